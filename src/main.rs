fn main() {
    std::process::exit(roomrig::cli::main());
}
