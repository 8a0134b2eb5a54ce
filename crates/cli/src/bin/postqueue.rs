fn main() {
    std::process::exit(rostfix_cli::postqueue::main());
}
