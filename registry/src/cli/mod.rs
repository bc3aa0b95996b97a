//! The `waymark` command line: `server`, `dev`, and the client commands.
