//! The `waymark` binary: parses the command line and hands off to the library.

fn main() -> std::process::ExitCode {
    waymark_registry::cli::main()
}
