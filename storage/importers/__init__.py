"""The import pipelines: the catalogue (a YAML file, docs/catalogue.md) and the contacts (an
Excel workbook, docs/contacts.md). Each goes format -> read and check -> write:

```mermaid
flowchart LR
    Y[catalogue .yaml] --> CR[catalogue_read] --> CC[catalogue_checks] --> CW[catalogue_write]
    X[contacts .xlsx] --> XR[contacts_read] --> XC[contacts_cells] --> XK[contacts_checks]
    XK --> XW[contacts_write]
    CW & XW --> DB[(database)]
```

How the CLI writes a checked file (storage.db.batched_writes), so the bot is never kept waiting
for the write lock for long:

```mermaid
sequenceDiagram
    participant CLI as laporham ... import
    participant DB as Database
    participant Bot as the bot's turns
    CLI->>DB: read what exists, check the whole file (no lock)
    Note over CLI: any problem: all listed, nothing written
    loop every 500 rows
        CLI->>DB: BEGIN IMMEDIATE, upsert the batch, COMMIT
        CLI->>CLI: pause 0.15 s
        Bot->>DB: its waiting transactions get the lock
    end
```

`*_format` holds each file's shape (pydantic models for the catalogue, sheet specs and row types
for the workbook); `common` holds what both share (problems, the error, the report, progress,
the upsert step; `yaml_messages` PyYAML's errors in Indonesian). All of a file's errors, its
own and those against the database, are collected in one pass and raised together, in the
file's order, as one ImportFileError, and nothing is written unless the whole file is sound.
Writers flush, never commit: the caller owns the transaction, and gets a `checkpoint()` call
between batches of rows (the CLI commits there, storage.db.batched_writes, so a national import
never holds the write lock for long).
"""

from storage.importers.catalogue_format import CatalogueDoc
from storage.importers.catalogue_read import load_catalogue, parse_catalogue
from storage.importers.catalogue_write import import_catalogue
from storage.importers.common import (
    Checkpoint,
    Counts,
    ImportFileError,
    ImportReport,
    Problem,
    Progress,
    no_checkpoint,
    noop_progress,
)
from storage.importers.contacts_format import ContactsDoc
from storage.importers.contacts_read import contacts_doc_from_rows, read_contacts_workbook
from storage.importers.contacts_write import import_contacts

__all__ = [
    "CatalogueDoc",
    "Checkpoint",
    "ContactsDoc",
    "Counts",
    "ImportFileError",
    "ImportReport",
    "Problem",
    "Progress",
    "contacts_doc_from_rows",
    "import_catalogue",
    "import_contacts",
    "load_catalogue",
    "no_checkpoint",
    "noop_progress",
    "parse_catalogue",
    "read_contacts_workbook",
]
