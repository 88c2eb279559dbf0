"""A labelling service for real/bogus vetting with active learning (`realbogus label`).

`prepare_service` opens DATA and the database; `create_app` is the FastAPI app; `open_store`
the storage (SQLite or PostgreSQL, alembic migrations); `write_export` the Panoptes-format
export that `realbogus crowd aggregate` reads; `queue` the active-learning strategies.
"""

from .app import create_app
from .export import export_csv, write_export
from .queue import STRATEGIES, mc_dropout
from .service import Service, ServiceConfig, prepare_service
from .store import Retirement, Store, database_url, open_store

__all__ = [
    "create_app",
    "export_csv",
    "write_export",
    "STRATEGIES",
    "mc_dropout",
    "Service",
    "ServiceConfig",
    "prepare_service",
    "Retirement",
    "Store",
    "database_url",
    "open_store",
]
