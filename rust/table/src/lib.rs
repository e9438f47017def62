//! calving-table (work in progress)
