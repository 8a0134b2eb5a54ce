fn main() {
    std::process::exit(rostfix_cli::postfix::main());
}
