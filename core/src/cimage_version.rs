//! cimage_version
