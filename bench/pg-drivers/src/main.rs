//! pgdrivers: tokio-postgres+deadpool vs sqlx, same workload.
//! usage: pgdrivers <tp|sqlx> <insert|claim|read> <concurrency> <seconds>
//! env: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/pgdrivers_bench)
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POOL_SIZE: usize = 16;
const READ_KEYS: i64 = 100_000; // queue_id=0 rows prefilled by run.sh
const INSERT_SQL: &str =
    r#"INSERT INTO records (queue_id, partition, "offset", content) VALUES ($1,$2,$3,$4)"#;
const CLAIM_SELECT: &str = "SELECT id FROM jobs WHERE state='available' ORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED";
const CLAIM_UPDATE: &str = "UPDATE jobs SET state='leased' WHERE id = ANY($1)";
const READ_SQL: &str =
    r#"SELECT content FROM records WHERE queue_id=$1 AND partition=$2 AND "offset"=$3"#;

#[derive(Clone, Copy, PartialEq)]
enum Work {
    Insert,
    Claim,
    Read,
}

struct Shared {
    offset: AtomicI64,
    content: String,
    stop: AtomicBool,
    measuring: AtomicBool,
}

/// xorshift64*, per task, no rand crate needed
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

#[derive(Default)]
struct TaskResult {
    lat_us: Vec<u32>,
    empty: u64,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[cfg(feature = "tp")]
mod tp {
    use super::*;
    use deadpool_postgres::{Config, ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime};
    use tokio_postgres::NoTls;

    pub async fn pool(url: &str) -> Res<Pool> {
        let mut cfg = Config::new();
        cfg.url = Some(url.to_string());
        cfg.manager = Some(ManagerConfig { recycling_method: RecyclingMethod::Fast });
        cfg.pool = Some(PoolConfig::new(POOL_SIZE));
        let pool = cfg.create_pool(Some(Runtime::Tokio1), NoTls)?;
        // open all connections up front
        let mut conns = Vec::new();
        for _ in 0..POOL_SIZE {
            conns.push(pool.get().await?);
        }
        drop(conns);
        Ok(pool)
    }

    pub async fn op(pool: &Pool, w: Work, sh: &Shared, rng: &mut Rng, part: i32) -> Res<bool> {
        match w {
            Work::Insert => {
                let c = pool.get().await?;
                let st = c.prepare_cached(INSERT_SQL).await?;
                let off = sh.offset.fetch_add(1, Ordering::Relaxed);
                c.execute(&st, &[&1i64, &part, &off, &sh.content]).await?;
                Ok(true)
            }
            Work::Claim => {
                let mut c = pool.get().await?;
                let tx = c.transaction().await?;
                let sel = tx.prepare_cached(CLAIM_SELECT).await?;
                let rows = tx.query(&sel, &[]).await?;
                let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                if ids.is_empty() {
                    tx.commit().await?;
                    return Ok(false);
                }
                let upd = tx.prepare_cached(CLAIM_UPDATE).await?;
                tx.execute(&upd, &[&ids]).await?;
                tx.commit().await?;
                Ok(true)
            }
            Work::Read => {
                let c = pool.get().await?;
                let st = c.prepare_cached(READ_SQL).await?;
                let off = (rng.next() % READ_KEYS as u64) as i64;
                let p = (off % 16) as i32;
                let row = c.query_opt(&st, &[&0i64, &p, &off]).await?;
                match row {
                    Some(r) => {
                        let s: &str = r.get(0);
                        Ok(!s.is_empty())
                    }
                    None => Ok(false),
                }
            }
        }
    }
}

#[cfg(feature = "sqlx")]
mod sq {
    use super::*;
    use sqlx::postgres::{PgPool, PgPoolOptions};
    use sqlx::Row;

    pub async fn pool(url: &str) -> Res<PgPool> {
        // test_before_acquire(false): match deadpool's RecyclingMethod::Fast (no ping per checkout).
        // Set SQLX_TEST_BEFORE_ACQUIRE=1 to get sqlx's default (ping on every acquire).
        let tba = std::env::var("SQLX_TEST_BEFORE_ACQUIRE").map(|v| v == "1").unwrap_or(false);
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE as u32)
            .test_before_acquire(tba)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        let mut conns = Vec::new();
        for _ in 0..POOL_SIZE {
            conns.push(pool.acquire().await?);
        }
        drop(conns);
        Ok(pool)
    }

    pub async fn op(pool: &PgPool, w: Work, sh: &Shared, rng: &mut Rng, part: i32) -> Res<bool> {
        match w {
            Work::Insert => {
                let off = sh.offset.fetch_add(1, Ordering::Relaxed);
                sqlx::query(INSERT_SQL)
                    .bind(1i64)
                    .bind(part)
                    .bind(off)
                    .bind(sh.content.as_str())
                    .execute(pool)
                    .await?;
                Ok(true)
            }
            Work::Claim => {
                let mut tx = pool.begin().await?;
                let rows = sqlx::query(CLAIM_SELECT).fetch_all(&mut *tx).await?;
                let ids: Vec<i64> = rows.iter().map(|r| r.get::<i64, _>(0)).collect();
                if ids.is_empty() {
                    tx.commit().await?;
                    return Ok(false);
                }
                sqlx::query(CLAIM_UPDATE).bind(&ids[..]).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(true)
            }
            Work::Read => {
                let off = (rng.next() % READ_KEYS as u64) as i64;
                let p = (off % 16) as i32;
                let row = sqlx::query(READ_SQL)
                    .bind(0i64)
                    .bind(p)
                    .bind(off)
                    .fetch_optional(pool)
                    .await?;
                match row {
                    Some(r) => {
                        let s: &str = r.try_get(0)?;
                        Ok(!s.is_empty())
                    }
                    None => Ok(false),
                }
            }
        }
    }
}

async fn run_tasks<F, Fut>(conc: usize, secs: u64, sh: Arc<Shared>, f: F) -> Vec<TaskResult>
where
    F: Fn(usize, Arc<Shared>) -> Fut,
    Fut: std::future::Future<Output = TaskResult> + Send + 'static,
{
    let mut hs = Vec::new();
    for i in 0..conc {
        hs.push(tokio::spawn(f(i, sh.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // warm-up, not measured
    sh.measuring.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    sh.stop.store(true, Ordering::SeqCst);
    let mut out = Vec::new();
    for h in hs {
        out.push(h.await.expect("task panicked"));
    }
    out
}

macro_rules! task_body {
    ($pool:expr, $module:ident, $w:expr, $i:expr, $sh:expr) => {{
        let pool = $pool.clone();
        let w = $w;
        let i = $i;
        let sh = $sh;
        async move {
            let mut r = TaskResult::default();
            let mut rng = Rng(0x9E3779B97F4A7C15 ^ ((i as u64 + 1) * 0x100000001B3));
            let part = (i % 16) as i32;
            while !sh.stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let ok = match $module::op(&pool, w, &sh, &mut rng, part).await {
                    Ok(ok) => ok,
                    Err(e) => {
                        eprintln!("op failed: {e}");
                        std::process::exit(1);
                    }
                };
                let dt = t0.elapsed().as_micros() as u32;
                if sh.measuring.load(Ordering::Relaxed) && !sh.stop.load(Ordering::Relaxed) {
                    if ok {
                        r.lat_us.push(dt);
                    } else {
                        r.empty += 1;
                    }
                }
            }
            r
        }
    }};
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: {} <tp|sqlx> <insert|claim|read> <concurrency> <seconds>", args[0]);
        std::process::exit(2);
    }
    let variant = args[1].clone();
    let w = match args[2].as_str() {
        "insert" => Work::Insert,
        "claim" => Work::Claim,
        "read" => Work::Read,
        x => panic!("unknown workload {x}"),
    };
    let conc: usize = args[3].parse()?;
    let secs: u64 = args[4].parse()?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/pgdrivers_bench".into());
    let start_off: i64 = std::env::var("START_OFFSET").ok().and_then(|s| s.parse().ok()).unwrap_or(0);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let sh = Arc::new(Shared {
            offset: AtomicI64::new(start_off),
            content: "x".repeat(1024),
            stop: AtomicBool::new(false),
            measuring: AtomicBool::new(false),
        });
        let results: Vec<TaskResult> = match variant.as_str() {
            #[cfg(feature = "tp")]
            "tp" => {
                let pool = tp::pool(&url).await?;
                run_tasks(conc, secs, sh, |i, sh| task_body!(pool, tp, w, i, sh)).await
            }
            #[cfg(feature = "sqlx")]
            "sqlx" => {
                let pool = sq::pool(&url).await?;
                run_tasks(conc, secs, sh, |i, sh| task_body!(pool, sq, w, i, sh)).await
            }
            v => panic!("variant {v} not compiled in"),
        };
        let mut lat: Vec<u32> = Vec::new();
        let mut empty = 0;
        for r in results {
            lat.extend(r.lat_us);
            empty += r.empty;
        }
        lat.sort_unstable();
        let n = lat.len();
        let pct = |p: f64| -> f64 {
            if n == 0 { 0.0 } else { lat[((n as f64 * p) as usize).min(n - 1)] as f64 / 1000.0 }
        };
        println!(
            "RESULT variant={} work={} conc={} secs={} ops={} ops_per_s={:.0} p50_ms={:.3} p99_ms={:.3} empty={}",
            variant, args[2], conc, secs, n, n as f64 / secs as f64, pct(0.50), pct(0.99), empty
        );
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    })
}
