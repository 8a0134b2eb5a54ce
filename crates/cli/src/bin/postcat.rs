fn main() {
    std::process::exit(rostfix_cli::unimplemented::main(
        "postcat",
        "the queue tools (issue 4)",
    ));
}
