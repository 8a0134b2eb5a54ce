fn main() {
    std::process::exit(rostfix_cli::unimplemented::main(
        "postsuper",
        "the queue tools (issue 4)",
    ));
}
