//! The `vlsp` binary: everything lives in [`vlsp::cli`].

fn main() -> anyhow::Result<()> {
    vlsp::cli::main()
}
