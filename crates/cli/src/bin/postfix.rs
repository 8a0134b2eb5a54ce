fn main() {
    std::process::exit(rostfix_cli::unimplemented::main(
        "postfix",
        "the receive path (issue 3)",
    ));
}
