fn main() {
    std::process::exit(rostfix_cli::postmap::main());
}
