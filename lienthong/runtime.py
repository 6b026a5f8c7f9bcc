"""One process's wiring: settings -> store -> commit-hook subscribers (identity linking)."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.repository import ingest_repository
from fhir_server.hub.outbox import attach_outbox
from fhir_server.identity.hook import Linker
from fhir_server.reports.hook import attach_reports
from fhir_server.reports.reexam import reexam_rule
from fhir_server.settings import Settings
from fhir_server.storage import SqlStore, open_store
from mappings import facilities


@dataclass
class Runtime:
    """What a command or server process works with."""

    settings: Settings
    store: SqlStore
    linker: Linker | None


def attach_linker(store: SqlStore, settings: Settings, deferred: bool = False) -> Linker | None:
    """Subscribe cross-hospital linking to ingest commits, unless LIENTHONG_LINK_ON_INGEST=false.

    `deferred`: link only when `drain()` is called (the MLLP listener, so ACKs never wait for it)."""
    if not settings.link_on_ingest:
        return None
    return Linker(store, immediate=not deferred).attach()


def load_department_facilities(path: str) -> None:
    """Merge the department's facility CSV over the shipped registry (invalid rows are skipped: the
    `lienthong facilities load` command is where they are reported)."""
    rows, _errors = facilities.load_csv(path)
    facilities.merge(rows)


def open_runtime(
    settings: Settings, *, pool_size: int | None = None, create: bool = True, deferred_linking: bool = False
) -> Runtime:
    """Open the store at settings.database_url (creating the schema unless told not to) and wire it."""
    store = open_store(settings.database_url, pool_size=pool_size or settings.pool_size, create=create)
    if create:
        ingest_repository(store)  # the ingest side's tables, beside the store's
    if settings.facilities_csv:
        load_department_facilities(settings.facilities_csv)
    if settings.report_facts:
        attach_reports(store, reexam_rule(settings))  # visit facts for the health-department summaries
    if settings.outbox:
        attach_outbox(store)  # committed changes wait for a central hub to pull them
    return Runtime(settings, store, attach_linker(store, settings, deferred_linking))
