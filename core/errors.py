"""Exceptions raised by core; pages and the CLI turn them into one readable message."""


class DefectLensError(Exception):
    """Base class for every error DefectLens reports to a person."""


class InvalidImageError(DefectLensError):
    """An image could not be decoded safely; the message names the reason."""


class DatasetError(DefectLensError):
    """A dataset folder or archive was refused; the message names the file and reason."""


class ModelError(DefectLensError):
    """A model artifact is missing, corrupt or does not match its metadata."""


class PermissionDenied(DefectLensError):
    """The user's role does not allow this action."""


class AuthenticationError(DefectLensError):
    """Login refused. The message is deliberately the same for every cause."""


class Conflict(DefectLensError):
    """Someone else changed the record first (optimistic version check failed)."""


class NotFound(DefectLensError):
    """A record the caller named does not exist."""


class ValidationError(DefectLensError):
    """An argument a person typed is out of range or malformed."""


class StorageError(DefectLensError):
    """The disk or the database refused a write (full, read-only, locked too long, away).

    The message says where, why and what was kept; nothing of the failed step was stored.
    ``kept`` counts the parts an ingest had committed before the fault.
    """

    kept: int = 0
