"""Profile validation against the VN Core guide's StructureDefinitions (see validator.py)."""
