fn main() {
    std::process::exit(rostfix_cli::postcat::main());
}
