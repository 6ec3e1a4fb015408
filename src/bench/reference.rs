//! References measured in the same run: the bare-HTTP ceiling and the fdatasync ceiling
//! (being written).
