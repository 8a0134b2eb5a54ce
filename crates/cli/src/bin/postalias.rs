fn main() {
    std::process::exit(rostfix_cli::postalias::main());
}
