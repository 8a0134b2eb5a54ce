fn main() {
    std::process::exit(rostfix_cli::postsuper::main());
}
