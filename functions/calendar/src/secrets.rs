//! Channel tokens: the secret we hand the provider when a channel is created, and that it
//! echoes in `X-Goog-Channel-Token` on every notification, proving the notification comes
//! from the channel's creator and not from someone who guessed the webhook URL. They are
//! the platform's tokens ([`celeriac_platform::token`]): only their digest is stored, and
//! a presented one is checked in constant time.

pub use celeriac_platform::token::{Token as ChannelToken, TokenDigest};
