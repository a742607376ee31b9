//! Input pipeline (in progress).
