//! An SMS-pumping attack simulation on the manual clock: a day of real users in three
//! countries mixed with a bot, through a real `OtpService` (default limits, the memory
//! store), with or without the conversion guard. A day of real users alone comes first
//! (the service has history, as a deployed one does); only the second day is reported. Shared by the test (`pumping.rs`) and the
//! bench that prints the table (`benches/pumping.rs`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use phone_otp::{
    ChallengeId, Channel, ConversionGuard, HmacKey, KeyRing, LimitKind, Limits, ManualClock,
    Message, OtpService, PhoneNumber, PhoneProvider, ProviderError, Purpose, Receipt,
    ResendRequest, StartError, StartRequest, Timestamp,
};
use secrecy::{ExposeSecret, SecretSlice};

/// Dollars per SMS: what the attacker's sends cost the victim (GB is the target).
pub const GB_SMS_MICROS: u64 = 45_000;

/// A bot: where it sends and how often.
#[derive(Debug, Clone)]
pub struct Bot {
    /// Number bases it walks sequentially (`+4479110` then five digits), in turn.
    pub prefixes: Vec<String>,
    /// One send per this interval, all day.
    pub every: Duration,
}

impl Bot {
    /// One high-cost prefix, a send every 10 seconds (8,640 a day).
    pub fn single_prefix() -> Self {
        Self {
            prefixes: vec!["+4479110".to_owned()],
            every: Duration::from_secs(10),
        }
    }

    /// 50 prefixes in turn, a send every 30 seconds (2,880 a day, 58 per prefix).
    pub fn spread() -> Self {
        Self {
            prefixes: (20..70).map(|p| format!("+44791{p}")).collect(),
            every: Duration::from_secs(30),
        }
    }
}

/// One simulated day.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub users: u32,
    pub guard: Option<ConversionGuard>,
    pub bot: Bot,
    pub seed: u64,
}

/// What happened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub attack_tries: u64,
    pub attack_delivered: u64,
    /// Delivered among the tries after the first 100.
    pub attack_delivered_after_100: u64,
    pub attack_tries_after_100: u64,
    /// The bot's first refused send (1-based) and its time from the start of the day.
    pub first_block: Option<(u64, Duration)>,
    pub users: u64,
    /// Users who received at least one code.
    pub users_served: u64,
    /// Real users' sends refused, by any limit.
    pub real_refusals: u64,
    /// Real users' sends refused by the guard.
    pub real_guard_refusals: u64,
    pub real_sends: u64,
    pub real_verified: u64,
}

impl Report {
    pub fn blocked_after_100(&self) -> f64 {
        1.0 - self.attack_delivered_after_100 as f64 / self.attack_tries_after_100.max(1) as f64
    }

    pub fn attack_cost_dollars(&self) -> f64 {
        (self.attack_delivered * GB_SMS_MICROS) as f64 / 1e6
    }

    pub fn served_share(&self) -> f64 {
        self.users_served as f64 / self.users.max(1) as f64
    }
}

/// Keeps each number's last code so the simulated users can type it.
#[derive(Debug, Default, Clone)]
struct CodeBook {
    codes: Arc<Mutex<HashMap<String, String>>>,
}

#[async_trait]
impl PhoneProvider for CodeBook {
    fn name(&self) -> &str {
        "sim"
    }

    fn supports(&self, _: Channel) -> bool {
        true
    }

    async fn send(&self, message: &Message) -> Result<Receipt, ProviderError> {
        if let Some(code) = message.code() {
            self.codes.lock().unwrap().insert(
                message.to().e164().to_owned(),
                code.expose_secret().to_owned(),
            );
        }
        Ok(Receipt::new("sim", "m", message.channel()))
    }
}

/// A small deterministic generator (xorshift64*), so every run is the same day.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn secs(&mut self, from: u64, to: u64) -> u64 {
        (from + self.below(to - from + 1)) * 1000
    }
}

/// A valid mobile number in Japan, the US or Great Britain (never in the bot's ranges).
fn real_number(rng: &mut Rng) -> PhoneNumber {
    loop {
        let text = match rng.below(3) {
            0 => format!("+8190{:08}", rng.below(100_000_000)),
            1 => {
                let area = [212, 312, 415, 617, 646][rng.below(5) as usize];
                format!("+1{area}{}{:06}", 2 + rng.below(8), rng.below(1_000_000))
            }
            _ => format!("+4478{:08}", rng.below(100_000_000)),
        };
        if let Ok(number) = PhoneNumber::parse(&text) {
            return number;
        }
    }
}

#[derive(Debug)]
enum Event {
    UserStart(u32),
    UserVerify(u32, ChallengeId),
    UserResend(u32, ChallengeId),
    BotSend(u64),
}

struct User {
    to: PhoneNumber,
    served: bool,
}

/// Events in time order (ties in the order they were planned).
#[derive(Default)]
struct Agenda {
    queue: BinaryHeap<Reverse<(u64, usize)>>,
    events: Vec<Option<Event>>,
}

impl Agenda {
    fn plan(&mut self, at: u64, event: Event) {
        self.events.push(Some(event));
        self.queue.push(Reverse((at, self.events.len() - 1)));
    }

    fn next(&mut self) -> Option<(u64, Event)> {
        let Reverse((at, index)) = self.queue.pop()?;
        Some((at, self.events[index].take()?))
    }
}

/// Runs one simulated day.
pub async fn run(scenario: &Scenario) -> Report {
    let start = Timestamp::from_millis(1_764_288_000_000); // a UTC midnight
    let clock = ManualClock::starting_at(start);
    let book = CodeBook::default();
    let key = HmacKey::new(1, &SecretSlice::from(vec![5u8; 32])).unwrap();
    let limits = Limits {
        conversion_guard: scenario.guard.clone(),
        ..Limits::default()
    };
    let otp = OtpService::builder()
        .key_ring(KeyRing::new(key))
        .provider(book.clone())
        .clock(clock.clone())
        .limits(limits)
        .build()
        .unwrap();
    let mut rng = Rng(scenario.seed | 1);
    let day_ms = 24 * 3_600_000u64;
    let mut agenda = Agenda::default();
    let mut users = Vec::with_capacity(2 * scenario.users as usize);
    // Users below `scenario.users` live the warm-up day, the rest the reported day.
    for user in 0..2 * scenario.users {
        users.push(User {
            to: real_number(&mut rng),
            served: false,
        });
        let day = u64::from(user >= scenario.users) * day_ms;
        agenda.plan(day + rng.below(day_ms), Event::UserStart(user));
    }
    let every = scenario.bot.every.as_millis() as u64;
    let mut tries = 0;
    while tries * every < day_ms {
        agenda.plan(day_ms + tries * every + 3_000, Event::BotSend(tries));
        tries += 1;
    }
    let reported = |user: u32| user >= scenario.users;

    let mut report = Report {
        users: u64::from(scenario.users),
        ..Report::default()
    };
    // Users send from 10.x.y.z, the bot from 100.64.x.y: a new address every send.
    let user_ip = |user: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + user));
    let bot_ip = |n: u64| IpAddr::V4(Ipv4Addr::from(0x6440_0000u32 + n as u32));
    let code_for = |to: &PhoneNumber| book.codes.lock().unwrap().get(to.e164()).cloned();
    while let Some((at, event)) = agenda.next() {
        clock.set(Timestamp::from_millis(start.as_millis() + at));
        match event {
            Event::UserStart(user) => {
                let to = users[user as usize].to.clone();
                let request = StartRequest::sms(to, Purpose::SignIn)
                    .subject(format!("user-{user}"))
                    .client_ip(user_ip(user));
                let result = otp.start(request).await;
                if !reported(user) {
                    if let Ok(started) = result {
                        plan_user_next(&mut agenda, &mut rng, at, user, started.challenge_id);
                    }
                    continue;
                }
                report.real_sends += 1;
                match result {
                    Ok(started) => {
                        users[user as usize].served = true;
                        plan_user_next(&mut agenda, &mut rng, at, user, started.challenge_id);
                    }
                    Err(error) => count_real_refusal(&mut report, &error),
                }
            }
            Event::UserResend(user, id) => {
                let request = ResendRequest::new(id).client_ip(user_ip(user));
                let result = otp.resend_with(request).await;
                if !reported(user) {
                    if let Ok(started) = result
                        && rng.chance(0.85)
                    {
                        let when = at + rng.secs(5, 60);
                        agenda.plan(when, Event::UserVerify(user, started.challenge_id));
                    }
                    continue;
                }
                report.real_sends += 1;
                match result {
                    Ok(started) => {
                        users[user as usize].served = true;
                        // After a resend the user verifies or gives up.
                        if rng.chance(0.85) {
                            let when = at + rng.secs(5, 60);
                            agenda.plan(when, Event::UserVerify(user, started.challenge_id));
                        }
                    }
                    Err(phone_otp::ResendError::Limited { limit, .. }) => {
                        report.real_refusals += 1;
                        if limit == LimitKind::Conversion {
                            report.real_guard_refusals += 1;
                        }
                    }
                    Err(_) => report.real_refusals += 1,
                }
            }
            Event::UserVerify(user, id) => {
                let code = code_for(&users[user as usize].to).unwrap_or_default();
                let verified = otp
                    .verify(&id, &code)
                    .await
                    .map(|o| o.is_verified())
                    .unwrap_or(false);
                if verified && reported(user) {
                    report.real_verified += 1;
                }
            }
            Event::BotSend(n) => {
                let bot = &scenario.bot;
                let base = &bot.prefixes[(n as usize) % bot.prefixes.len()];
                let serial = n / bot.prefixes.len() as u64;
                let to = PhoneNumber::parse(&format!("{base}{serial:05}"))
                    .unwrap_or_else(|e| panic!("bot number {base}{serial:05}: {e}"));
                let request = StartRequest::sms(to, Purpose::SignIn)
                    .subject(format!("bot-{n}"))
                    .client_ip(bot_ip(n));
                report.attack_tries += 1;
                let delivered = otp.start(request).await.is_ok();
                if delivered {
                    report.attack_delivered += 1;
                } else if report.first_block.is_none() {
                    report.first_block = Some((n + 1, Duration::from_millis(at - day_ms)));
                }
                if n >= 100 {
                    report.attack_tries_after_100 += 1;
                    report.attack_delivered_after_100 += u64::from(delivered);
                }
            }
        }
    }
    report.users_served = users[scenario.users as usize..]
        .iter()
        .filter(|u| u.served)
        .count() as u64;
    report
}

/// A real user verifies (85%), or else asks for another code half the time.
fn plan_user_next(agenda: &mut Agenda, rng: &mut Rng, at: u64, user: u32, id: ChallengeId) {
    if rng.chance(0.85) {
        agenda.plan(at + rng.secs(5, 60), Event::UserVerify(user, id));
    } else if rng.chance(0.5) {
        agenda.plan(at + rng.secs(31, 120), Event::UserResend(user, id));
    }
}

fn count_real_refusal(report: &mut Report, error: &StartError) {
    report.real_refusals += 1;
    if let StartError::Limited {
        limit: LimitKind::Conversion,
        ..
    } = error
    {
        report.real_guard_refusals += 1;
    }
}
