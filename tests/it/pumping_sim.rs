//! An SMS-pumping attack simulation on the manual clock: two days of real users in five
//! countries, and on the second day an attack, through a real `OtpService` (the default
//! limits on the memory store), with or without the conversion guard. The first day gives
//! the service the history a deployed one has; only the second is reported. Shared by the
//! test (`pumping.rs`) and the bench that prints the table (`benches/pumping.rs`).
//!
//! Real users ([`Population::standard`]): 20,000 a day in Japan, the US, Great Britain,
//! Brazil and India, arriving by their local hour (a night-time lull), 85% verifying each
//! code after 5-60 s (half of the rest resend), 3% never verifying; two corporate blocks
//! where hundreds sign in within minutes from numbers of one prefix; and Mexico, a new
//! market whose first 300 users arrive on the second day with no history at all.
//!
//! Attacks ([`Attack`]): waves of sends to numbers drawn from templates (`#` a random
//! digit), each from a new address and user, verifying a share of their own codes.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use phone_otp::{
    ChallengeId, Channel, ConversionGuard, GuardLevel, HmacKey, KeyRing, LimitKind, Limits,
    ManualClock, Message, NumberType, OtpService, PhoneNumber, PhoneProvider, ProviderError,
    Purpose, Receipt, ResendError, ResendRequest, StartError, StartRequest, Timestamp,
};
use secrecy::{ExposeSecret, SecretSlice};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// The guard the simulation recommends and runs: the defaults, with the five markets the
/// service serves listed for a day's sends at the country level (their ranges keep the
/// default range probation of five).
pub fn recommended_guard() -> ConversionGuard {
    let mut guard = ConversionGuard::default();
    for market in ["JP", "US", "GB", "BR", "IN"] {
        guard.probation.insert(market.to_owned(), 5_000);
    }
    guard
}

/// What one SMS costs the service, in millionths of a dollar (rough A2P rates; the
/// destinations pumping targets cost the most).
pub fn sms_price_micros(region: &str) -> u64 {
    match region {
        "GB" => 45_000,
        "UZ" => 250_000,
        "KG" | "TJ" | "AZ" => 200_000,
        "GE" | "KZ" | "NG" => 100_000,
        "IN" => 5_000,
        "BR" | "MX" => 30_000,
        "JP" => 70_000,
        _ => 10_000,
    }
}

/// One country's real users.
#[derive(Debug, Clone)]
pub struct Market {
    pub region: &'static str,
    pub users_per_day: u32,
    /// Local time minus UTC, in minutes.
    pub utc_offset_minutes: i64,
    /// Their numbers: templates, `#` a random digit (an invalid draw is drawn again).
    pub numbers: Vec<&'static str>,
    /// Whether it has users on the first day (a new market does not).
    pub warm_up: bool,
}

/// A corporate block: many users of one prefix signing in within minutes, every day.
#[derive(Debug, Clone)]
pub struct Block {
    pub template: &'static str,
    pub users: u32,
    /// Local minute of the day the first arrives.
    pub local_minute: u64,
    pub utc_offset_minutes: i64,
    /// Over how long they arrive.
    pub over: Duration,
}

/// Every real user of a day.
#[derive(Debug, Clone)]
pub struct Population {
    pub markets: Vec<Market>,
    pub blocks: Vec<Block>,
    /// Share of users who never enter a code.
    pub never_verify: f64,
}

impl Population {
    /// 20,000 users a day in JP/US/GB/BR/IN, corporate blocks in Tokyo and New York, and
    /// Mexico's first 300 users on the second day.
    pub fn standard() -> Self {
        Self {
            markets: vec![
                Market {
                    region: "JP",
                    users_per_day: 6_000,
                    utc_offset_minutes: 9 * 60,
                    numbers: vec!["+8190########", "+8180########", "+8170########"],
                    warm_up: true,
                },
                Market {
                    region: "US",
                    users_per_day: 5_000,
                    utc_offset_minutes: -5 * 60,
                    numbers: vec![
                        "+1212#######",
                        "+1312#######",
                        "+1415#######",
                        "+1617#######",
                        "+1646#######",
                        "+1713#######",
                        "+1305#######",
                        "+1206#######",
                    ],
                    warm_up: true,
                },
                Market {
                    region: "GB",
                    users_per_day: 3_000,
                    utc_offset_minutes: 0,
                    // Ranges 4475-4479: the attacks' British ranges (4471-4474) are ones
                    // these users never reach.
                    numbers: vec![
                        "+4475########",
                        "+4477########",
                        "+4478########",
                        "+4479########",
                    ],
                    warm_up: true,
                },
                Market {
                    region: "BR",
                    users_per_day: 3_000,
                    utc_offset_minutes: -3 * 60,
                    // The 20 busiest area codes, mobile (9 after the area code).
                    numbers: vec![
                        "+55119########",
                        "+55119########",
                        "+55119########",
                        "+55219########",
                        "+55219########",
                        "+55319########",
                        "+55419########",
                        "+55519########",
                        "+55619########",
                        "+55719########",
                        "+55819########",
                        "+55859########",
                        "+55279########",
                        "+55489########",
                        "+55629########",
                        "+55919########",
                        "+55929########",
                        "+55479########",
                        "+55439########",
                        "+55169########",
                        "+55199########",
                        "+55129########",
                        "+55349########",
                    ],
                    warm_up: true,
                },
                Market {
                    region: "IN",
                    users_per_day: 3_000,
                    utc_offset_minutes: 5 * 60 + 30,
                    numbers: vec!["+917#########", "+918#########", "+919#########"],
                    warm_up: true,
                },
                Market {
                    region: "MX",
                    users_per_day: 300,
                    utc_offset_minutes: -6 * 60,
                    numbers: vec!["+5255########", "+5233########", "+5281########"],
                    warm_up: false,
                },
            ],
            blocks: vec![
                // 300 employees of one Tokyo company at 9:00 JST, within 20 minutes.
                Block {
                    template: "+8190123#####",
                    users: 300,
                    local_minute: 9 * 60,
                    utc_offset_minutes: 9 * 60,
                    over: Duration::from_secs(20 * 60),
                },
                // 200 at a New York office at 9:00 EST, within 15 minutes.
                Block {
                    template: "+1646820####",
                    users: 200,
                    local_minute: 9 * 60,
                    utc_offset_minutes: -5 * 60,
                    over: Duration::from_secs(15 * 60),
                },
            ],
            never_verify: 0.03,
        }
    }

    /// Users a day (the second day's, new market included).
    pub fn users_per_day(&self) -> u32 {
        self.markets.iter().map(|m| m.users_per_day).sum::<u32>()
            + self.blocks.iter().map(|b| b.users).sum::<u32>()
    }
}

/// A burst of sends at a steady rate.
#[derive(Debug, Clone)]
pub struct Wave {
    /// From the attack day's midnight (UTC).
    pub start: Duration,
    pub sends: u64,
    pub every: Duration,
    /// Numbers, in turn: templates, `#` a random digit.
    pub targets: Vec<String>,
}

/// An attack: its waves, and the share of its own codes it enters (to look real).
#[derive(Debug, Clone)]
pub struct Attack {
    pub waves: Vec<Wave>,
    pub verifies: f64,
}

impl Attack {
    fn steady(targets: Vec<String>, sends: u64, every: Duration) -> Self {
        Self {
            waves: vec![Wave {
                start: Duration::from_secs(3),
                sends,
                every,
                targets,
            }],
            verifies: 0.0,
        }
    }

    /// No attack: real users alone.
    pub fn none() -> Self {
        Self {
            waves: Vec::new(),
            verifies: 0.0,
        }
    }

    /// One high-cost British prefix in a range real users reach, a send every 10 s
    /// (8,640 a day).
    pub fn one_prefix() -> Self {
        Self::steady(
            vec!["+4479110#####".to_owned()],
            8_640,
            Duration::from_secs(10),
        )
    }

    /// 50 prefixes of one British range no real user reaches, in turn, a send every 30 s
    /// (2,880 a day, 58 a prefix).
    pub fn fifty_prefixes() -> Self {
        let targets = (20..70).map(|p| format!("+447412{p}####")).collect();
        Self::steady(targets, 2_880, Duration::from_secs(30))
    }

    /// Random mobile numbers of a country the service never serves (Uzbekistan), 5,000
    /// over the day.
    pub fn empty_country() -> Self {
        Self::steady(
            vec!["+9989########".to_owned()],
            5_000,
            Duration::from_millis(17_280),
        )
    }

    /// Priming, then a burst, in a country never served (Kyrgyzstan): 120 random numbers
    /// over two hours to teach the guard what "normal" is, then 3,000 to one prefix, a
    /// send every 10 s.
    pub fn priming_then_burst() -> Self {
        Self {
            waves: vec![
                Wave {
                    start: Duration::from_secs(3),
                    sends: 120,
                    every: Duration::from_secs(60),
                    targets: vec!["+99670#######".to_owned(), "+99655#######".to_owned()],
                },
                Wave {
                    start: Duration::from_secs(2 * 3600 + 3),
                    sends: 3_000,
                    every: Duration::from_secs(10),
                    targets: vec!["+99670555####".to_owned()],
                },
            ],
            verifies: 0.0,
        }
    }

    /// A slow spread: 40 sends an hour all day (960), over 200 prefixes in 10 countries
    /// (20 each, in turn): seven the service never serves, and ranges of Great Britain,
    /// Brazil and India its users never reach (five prefixes in each of four ranges).
    pub fn slow_spread() -> Self {
        // (the first five E.164 digits, the two that make 20 prefixes, the digits left).
        let unserved: [(&str, &[u32], usize); 7] = [
            ("99890", &[0, 19], 5),  // Uzbekistan
            ("99670", &[0, 19], 5),  // Kyrgyzstan
            ("99292", &[0, 19], 5),  // Tajikistan
            ("99450", &[0, 19], 5),  // Azerbaijan
            ("99555", &[0, 19], 5),  // Georgia
            ("77012", &[0, 19], 4),  // Kazakhstan
            ("23480", &[30, 49], 6), // Nigeria
        ];
        let mut countries: Vec<Vec<String>> = unserved
            .iter()
            .map(|(lead, range, rest)| {
                (range[0]..=range[1])
                    .map(|p| format!("+{lead}{p:02}{}", "#".repeat(*rest)))
                    .collect()
            })
            .collect();
        // Five prefixes in each of four ranges.
        let rare = |ranges: [&str; 4], rest: usize| -> Vec<String> {
            ranges
                .iter()
                .flat_map(|range| {
                    (0..5).map(move |p| format!("+{range}{p:02}{}", "#".repeat(rest)))
                })
                .collect()
        };
        countries.push(rare(["44711", "44712", "44713", "44714"], 5));
        countries.push(rare(["55689", "55699", "55959", "55969"], 6));
        countries.push(rare(["91600", "91601", "91602", "91603"], 5));
        // In turn over countries, then prefixes: every prefix gets 4-5 sends a day.
        let targets = (0..20)
            .flat_map(|p| countries.iter().map(move |c| c[p].clone()))
            .collect::<Vec<_>>();
        Self::steady(targets, 960, Duration::from_secs(90))
    }

    /// A bot that enters a fifth of its own codes, over 10 prefixes of an Indian range
    /// real users reach, a send every 20 s (4,320 a day).
    pub fn verifies_a_fifth() -> Self {
        let targets = (0..10).map(|p| format!("+9198765{p}####")).collect();
        Self {
            verifies: 0.2,
            ..Self::steady(targets, 4_320, Duration::from_secs(20))
        }
    }

    /// A ramp on one Brazilian prefix real users reach: 5 sends in the first 2 h 24 min,
    /// doubling every 2 h 24 min (5,115 over the day).
    pub fn ramp() -> Self {
        let step = DAY_MS / 10;
        let waves = (0..10u32)
            .map(|i| {
                let sends = 5 * 2u64.pow(i);
                Wave {
                    start: Duration::from_millis(u64::from(i) * step + 3_000),
                    sends,
                    every: Duration::from_millis(step / sends),
                    targets: vec!["+5511987######".to_owned()],
                }
            })
            .collect();
        Self {
            waves,
            verifies: 0.0,
        }
    }
}

/// One simulated run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub population: Population,
    pub guard: Option<ConversionGuard>,
    pub attack: Attack,
    pub seed: u64,
}

impl Scenario {
    /// The standard population, the recommended guard (or none), and `attack`.
    pub fn standard(attack: Attack, guarded: bool) -> Self {
        Self {
            population: Population::standard(),
            guard: guarded.then(recommended_guard),
            attack,
            seed: 20_261_207,
        }
    }
}

/// Real users of one kind: how many there were, got a code, were refused by the guard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Group {
    pub users: u64,
    pub served: u64,
    pub guard_refused: u64,
}

/// Sends and verified codes to one country on the reported day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub sends: u64,
    pub verified: u64,
}

impl Tally {
    pub fn rate(&self) -> f64 {
        self.verified as f64 / self.sends.max(1) as f64
    }
}

/// What happened on the reported day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub attack_tries: u64,
    pub attack_delivered: u64,
    pub attack_cost_micros: u64,
    /// Delivered among the tries after the first 100.
    pub attack_delivered_after_100: u64,
    pub attack_tries_after_100: u64,
    /// The attack's first refused send (1-based) and its time from the attack's start.
    pub first_block: Option<(u64, Duration)>,
    /// Guard refusals of the day by level (attack and real users together).
    pub guard_levels: Vec<(GuardLevel, u64)>,
    pub users: u64,
    /// Users who received at least one code.
    pub users_served: u64,
    /// Real users' sends refused, by any limit.
    pub real_refusals: u64,
    /// Real users' sends refused by the guard.
    pub real_guard_refusals: u64,
    /// Real users' refused sends by limit.
    pub real_refusals_by_limit: BTreeMap<String, u64>,
    pub real_sends: u64,
    pub real_verified: u64,
    /// Corporate blocks, the new market, users who never verify, users at local night
    /// (0:00-6:00).
    pub groups: BTreeMap<&'static str, Group>,
    /// Per country, real users and the attack together.
    pub countries: BTreeMap<String, Tally>,
}

impl Report {
    pub fn blocked(&self) -> f64 {
        1.0 - self.attack_delivered as f64 / self.attack_tries.max(1) as f64
    }

    pub fn blocked_after_100(&self) -> f64 {
        1.0 - self.attack_delivered_after_100 as f64 / self.attack_tries_after_100.max(1) as f64
    }

    pub fn attack_cost_dollars(&self) -> f64 {
        self.attack_cost_micros as f64 / 1e6
    }

    pub fn served_share(&self) -> f64 {
        self.users_served as f64 / self.users.max(1) as f64
    }

    pub fn group(&self, name: &str) -> Group {
        self.groups.get(name).copied().unwrap_or_default()
    }

    pub fn country(&self, region: &str) -> Tally {
        self.countries.get(region).copied().unwrap_or_default()
    }
}

/// Keeps each number's last code so simulated users (and a bot) can type it.
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

/// A small deterministic generator (xorshift64*), so every run is the same two days.
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

    /// A valid number from `template` (`#` a random digit).
    fn number(&mut self, template: &str) -> PhoneNumber {
        for _ in 0..1_000 {
            let text: String = template
                .chars()
                .map(|c| {
                    if c == '#' {
                        char::from(b'0' + self.below(10) as u8)
                    } else {
                        c
                    }
                })
                .collect();
            // A mobile number, as the default destination policy sends to.
            if let Ok(number) = PhoneNumber::parse(&text)
                && matches!(
                    number.number_type(),
                    NumberType::Mobile | NumberType::FixedLineOrMobile
                )
            {
                return number;
            }
        }
        panic!("no mobile number matches {template}");
    }

    /// A local minute of the day, weighted by how busy each hour is: a lull at night.
    fn local_minute(&mut self) -> u64 {
        // Weights per local hour, in tenths: night 1.5, morning 6, day 10, late evening 5.
        const WEIGHTS: [u64; 24] = [
            15, 15, 15, 15, 15, 15, 60, 60, 60, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100,
            100, 100, 100, 50, 50,
        ];
        let total: u64 = WEIGHTS.iter().sum();
        let mut pick = self.below(total);
        for (hour, weight) in WEIGHTS.iter().enumerate() {
            if pick < *weight {
                return hour as u64 * 60 + self.below(60);
            }
            pick -= weight;
        }
        unreachable!("the pick is below the total")
    }
}

/// UTC ms into the day of a local minute, on day `day`.
fn at_local(day: u64, local_minute: u64, utc_offset_minutes: i64) -> u64 {
    let minute = (local_minute as i64 - utc_offset_minutes).rem_euclid(24 * 60) as u64;
    day * DAY_MS + minute * 60_000
}

#[derive(Debug)]
enum Event {
    UserStart(u32),
    UserVerify(u32, ChallengeId),
    UserResend(u32, ChallengeId),
    BotSend(u64, PhoneNumber),
    BotVerify(ChallengeId, PhoneNumber),
}

struct User {
    to: PhoneNumber,
    region: &'static str,
    verifies: bool,
    reported: bool,
    groups: Vec<&'static str>,
    served: bool,
    guard_refused: bool,
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

/// Plans every real user of both days.
fn plan_users(population: &Population, rng: &mut Rng, agenda: &mut Agenda) -> Vec<User> {
    let mut users = Vec::new();
    let mut add = |rng: &mut Rng, agenda: &mut Agenda, at: u64, mut user: User| {
        user.verifies = !rng.chance(population.never_verify);
        if !user.verifies {
            user.groups.push("never verify");
        }
        agenda.plan(at, Event::UserStart(users.len() as u32));
        users.push(user);
    };
    for day in 0..2u64 {
        let reported = day == 1;
        for market in &population.markets {
            if day == 0 && !market.warm_up {
                continue;
            }
            for _ in 0..market.users_per_day {
                let template = market.numbers[rng.below(market.numbers.len() as u64) as usize];
                let local = rng.local_minute();
                let mut groups = Vec::new();
                if local < 6 * 60 {
                    groups.push("night");
                }
                if !market.warm_up {
                    groups.push("new market");
                }
                let at = at_local(day, local, market.utc_offset_minutes) + rng.below(60_000);
                let to = rng.number(template);
                let user = User {
                    to,
                    region: market.region,
                    verifies: true,
                    reported,
                    groups,
                    served: false,
                    guard_refused: false,
                };
                add(rng, agenda, at, user);
            }
        }
        for block in &population.blocks {
            for _ in 0..block.users {
                let at = at_local(day, block.local_minute, block.utc_offset_minutes)
                    + rng.below(block.over.as_millis() as u64);
                let to = rng.number(block.template);
                let region = match to.region() {
                    Some(r) if r.as_str() == "JP" => "JP",
                    _ => "US",
                };
                let user = User {
                    to,
                    region,
                    verifies: true,
                    reported,
                    groups: vec!["corporate"],
                    served: false,
                    guard_refused: false,
                };
                add(rng, agenda, at, user);
            }
        }
    }
    users
}

/// Runs the two days and reports the second.
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
    let mut agenda = Agenda::default();
    let mut users = plan_users(&scenario.population, &mut rng, &mut agenda);
    let mut n = 0u64;
    for wave in &scenario.attack.waves {
        for i in 0..wave.sends {
            let at = DAY_MS + wave.start.as_millis() as u64 + i * wave.every.as_millis() as u64;
            let template = &wave.targets[(i as usize) % wave.targets.len()];
            agenda.plan(at, Event::BotSend(n, rng.number(template)));
            n += 1;
        }
    }

    let mut report = Report::default();
    let mut refusals_before = Vec::new();
    let mut reported_day = false;
    // Users send from 10.x.y.z, the bot from 100.64.x.y: a new address every send.
    let user_ip = |user: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000u32 + user));
    let bot_ip = |n: u64| IpAddr::V4(Ipv4Addr::from(0x6440_0000u32 + n as u32));
    let code_for = |to: &PhoneNumber| book.codes.lock().unwrap().get(to.e164()).cloned();
    let region_of = |to: &PhoneNumber| {
        to.region()
            .map_or_else(|| "?".to_owned(), |r| r.as_str().to_owned())
    };
    while let Some((at, event)) = agenda.next() {
        if !reported_day && at >= DAY_MS {
            reported_day = true;
            refusals_before = otp.guard_refusals_by_level();
        }
        clock.set(Timestamp::from_millis(start.as_millis() + at));
        match event {
            Event::UserStart(user) => {
                let u = &users[user as usize];
                let request = StartRequest::sms(u.to.clone(), Purpose::SignIn)
                    .subject(format!("user-{user}"))
                    .client_ip(user_ip(user));
                let result = otp.start(request).await;
                let (reported, verifies) = (u.reported, u.verifies);
                match result {
                    Ok(started) => {
                        let id = started.challenge_id;
                        plan_user_next(&mut agenda, &mut rng, at, user, id, verifies);
                        if reported {
                            real_sent(&mut report, &mut users[user as usize]);
                        }
                    }
                    Err(error) if reported => {
                        let limit = match error {
                            StartError::Limited { limit, .. } => Some(limit),
                            _ => None,
                        };
                        real_refused(&mut report, &mut users[user as usize], limit);
                    }
                    Err(_) => {}
                }
            }
            Event::UserResend(user, id) => {
                let request = ResendRequest::new(id).client_ip(user_ip(user));
                let result = otp.resend_with(request).await;
                let (reported, verifies) =
                    (users[user as usize].reported, users[user as usize].verifies);
                match result {
                    Ok(started) => {
                        // After a resend the user verifies or gives up.
                        if verifies && rng.chance(0.85) {
                            let when = at + rng.secs(5, 60);
                            agenda.plan(when, Event::UserVerify(user, started.challenge_id));
                        }
                        if reported {
                            real_sent(&mut report, &mut users[user as usize]);
                        }
                    }
                    Err(error) if reported => {
                        let limit = match error {
                            ResendError::Limited { limit, .. } => Some(limit),
                            _ => None,
                        };
                        real_refused(&mut report, &mut users[user as usize], limit);
                    }
                    Err(_) => {}
                }
            }
            Event::UserVerify(user, id) => {
                let u = &users[user as usize];
                let code = code_for(&u.to).unwrap_or_default();
                let verified = otp
                    .verify(&id, &code)
                    .await
                    .map(|o| o.is_verified())
                    .unwrap_or(false);
                if verified && u.reported {
                    report.real_verified += 1;
                    report
                        .countries
                        .entry(u.region.to_owned())
                        .or_default()
                        .verified += 1;
                }
            }
            Event::BotSend(n, to) => {
                let request = StartRequest::sms(to.clone(), Purpose::SignIn)
                    .subject(format!("bot-{n}"))
                    .client_ip(bot_ip(n));
                report.attack_tries += 1;
                let delivered = match otp.start(request).await {
                    Ok(started) => {
                        if rng.chance(scenario.attack.verifies) {
                            let when = at + rng.secs(10, 60);
                            agenda.plan(when, Event::BotVerify(started.challenge_id, to.clone()));
                        }
                        true
                    }
                    Err(StartError::Limited { .. }) => false,
                    Err(error) => panic!("the bot's send to {to} failed: {error}"),
                };
                let region = region_of(&to);
                if delivered {
                    report.attack_delivered += 1;
                    report.attack_cost_micros += sms_price_micros(&region);
                    report.countries.entry(region).or_default().sends += 1;
                } else if report.first_block.is_none() {
                    report.first_block = Some((n + 1, Duration::from_millis(at - DAY_MS)));
                }
                if n >= 100 {
                    report.attack_tries_after_100 += 1;
                    report.attack_delivered_after_100 += u64::from(delivered);
                }
            }
            Event::BotVerify(id, to) => {
                let code = code_for(&to).unwrap_or_default();
                let verified = otp
                    .verify(&id, &code)
                    .await
                    .map(|o| o.is_verified())
                    .unwrap_or(false);
                if verified {
                    report.countries.entry(region_of(&to)).or_default().verified += 1;
                }
            }
        }
    }
    let before: HashMap<GuardLevel, u64> = refusals_before.into_iter().collect();
    report.guard_levels = otp
        .guard_refusals_by_level()
        .into_iter()
        .map(|(level, count)| (level, count - before.get(&level).copied().unwrap_or(0)))
        .filter(|(_, count)| *count > 0)
        .collect();
    for user in users.iter().filter(|u| u.reported) {
        report.users += 1;
        report.users_served += u64::from(user.served);
        for name in &user.groups {
            let group = report.groups.entry(name).or_default();
            group.users += 1;
            group.served += u64::from(user.served);
            group.guard_refused += u64::from(user.guard_refused);
        }
    }
    report
}

fn real_sent(report: &mut Report, user: &mut User) {
    user.served = true;
    report.real_sends += 1;
    report
        .countries
        .entry(user.region.to_owned())
        .or_default()
        .sends += 1;
}

fn real_refused(report: &mut Report, user: &mut User, limit: Option<LimitKind>) {
    report.real_refusals += 1;
    let name = limit.map_or_else(|| "other".to_owned(), |l| format!("{l:?}"));
    *report.real_refusals_by_limit.entry(name).or_default() += 1;
    if limit == Some(LimitKind::Conversion) {
        report.real_guard_refusals += 1;
        user.guard_refused = true;
    }
}

/// A real user verifies (85%, unless they never do), or else asks for another code half
/// the time.
fn plan_user_next(
    agenda: &mut Agenda,
    rng: &mut Rng,
    at: u64,
    user: u32,
    id: ChallengeId,
    verifies: bool,
) {
    if verifies && rng.chance(0.85) {
        agenda.plan(at + rng.secs(5, 60), Event::UserVerify(user, id));
    } else if rng.chance(0.5) {
        agenda.plan(at + rng.secs(31, 120), Event::UserResend(user, id));
    }
}
