//! `adls`: a thin command-line tool on adls-rest (work in progress).
fn main() {}
