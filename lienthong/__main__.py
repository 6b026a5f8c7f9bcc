"""`python -m lienthong …`: the same as the `lienthong` script."""

from lienthong.main import main

main()
