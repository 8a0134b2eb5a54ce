fn main() {
    std::process::exit(rostfix_cli::postconf::main());
}
