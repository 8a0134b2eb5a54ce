fn main() {
    std::process::exit(rostfix_cli::postdrop::main());
}
