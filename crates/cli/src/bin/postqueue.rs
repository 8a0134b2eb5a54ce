fn main() {
    std::process::exit(rostfix_cli::unimplemented::main(
        "postqueue",
        "the queue tools (issue 4)",
    ));
}
