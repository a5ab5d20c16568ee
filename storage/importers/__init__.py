"""The import pipelines: the catalogue (a YAML file, docs/catalogue.md) and the contacts (an
Excel workbook, docs/contacts.md). Each goes format -> read and check -> write:

```mermaid
flowchart LR
    Y[catalogue .yaml] --> CR[catalogue_read] --> CC[catalogue_checks] --> CW[catalogue_write]
    X[contacts .xlsx] --> XR[contacts_read] --> XC[contacts_cells] --> XK[contacts_checks]
    XK --> XW[contacts_write]
    CW & XW --> DB[(database)]
```

`*_format` holds each file's shape (pydantic models for the catalogue, sheet specs and row types
for the workbook); `common` holds what both share (problems, the error, the report, progress,
the upsert step). A file's errors are collected and raised together as one ImportFileError, and
nothing is written unless the whole file is sound. Writers flush, never commit: the caller owns
the transaction.
"""

from storage.importers.catalogue_format import CatalogueDoc
from storage.importers.catalogue_read import load_catalogue, parse_catalogue
from storage.importers.catalogue_write import import_catalogue
from storage.importers.common import (
    Counts,
    ImportFileError,
    ImportReport,
    Problem,
    Progress,
    noop_progress,
)
from storage.importers.contacts_format import ContactsDoc
from storage.importers.contacts_read import contacts_doc_from_rows, read_contacts_workbook
from storage.importers.contacts_write import import_contacts

__all__ = [
    "CatalogueDoc",
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
    "noop_progress",
    "parse_catalogue",
    "read_contacts_workbook",
]
