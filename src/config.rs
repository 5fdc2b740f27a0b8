//! (placeholder until the config module lands)

pub fn parse_size(text: &str) -> Result<u64, String> {
    text.parse::<u64>().map_err(|_| format!("invalid size '{text}'"))
}
