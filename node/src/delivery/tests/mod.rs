//! Provider tests against local fakes that check each provider's wire format (`fakes`), SMTP
//! against a real SMTP server (aiosmtpd), and retries/breaker through `Providers::send`.

mod apns;
mod email_apis;
mod fakes;
mod fcm;
mod retries;
mod slack;
mod smtp;
mod twilio;
mod webhook;
