//! What the lake's three command lines (`lakectl`, `lake-ingest`,
//! `lake-compact`) do the same way with their arguments.
//!
//! Owns: the exit code of a usage error and parsing with it. Must not:
//! define any command's arguments.

use std::ffi::OsString;

/// The exit code of a usage error (an unknown or misspelt flag, a missing
/// or malformed argument) in every binary: sysexits' `EX_USAGE`. It is
/// none of the codes a command gives meaning to (0 done, 1 failed, 2
/// changes present / records dead-lettered / groups failed), so a typo
/// never reads as a result.
pub const USAGE_EXIT: u8 = 64;

/// Parse `args` (the program name first) into `T`; `--help` and
/// `--version` print and exit 0, a usage error prints clap's message and
/// exits [`USAGE_EXIT`].
pub fn parse_from<T, I, A>(args: I) -> T
where
    T: clap::Parser,
    I: IntoIterator<Item = A>,
    A: Into<OsString> + Clone,
{
    match T::try_parse_from(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            let code = if e.use_stderr() { USAGE_EXIT.into() } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    }
}

/// [`parse_from`] the process's own arguments.
pub fn parse<T: clap::Parser>() -> T {
    parse_from(std::env::args_os())
}
