fn main() {
    std::process::exit(rostfix_cli::sendmail::main());
}
