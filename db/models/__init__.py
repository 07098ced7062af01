"""SQLAlchemy 2 models for every DefectLens table, in three groups over one declarative base
(db.models.base): accounts (users, SSO identities, sessions, audit), training (datasets, jobs,
metrics, models) and quality (images, flagging rules, inspections, rollups, SPC baselines,
annotations, reviews). Import them from here. All times are stored in UTC."""

from db.models.accounts import AuditEntry, SsoIdentity, User, UserSession
from db.models.base import (
    NAMING_CONVENTION,
    Base,
    Disposition,
    JobStatus,
    ModelStatus,
    Role,
    UTCDateTime,
    utcnow,
)
from db.models.quality import (
    Annotation,
    FlagRule,
    Image,
    Inspection,
    Review,
    Rollup,
    SpcBaseline,
)
from db.models.training import Dataset, JobMetric, Model, TrainingJob

__all__ = [
    "NAMING_CONVENTION", "Annotation", "AuditEntry", "Base", "Dataset", "Disposition",
    "FlagRule", "Image", "Inspection", "JobMetric", "JobStatus", "Model", "ModelStatus",
    "Review", "Rollup", "Role", "SpcBaseline", "SsoIdentity", "TrainingJob", "User",
    "UserSession", "UTCDateTime", "utcnow",
]  # fmt: skip
