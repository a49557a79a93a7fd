//! The terminal while `--live` runs: raw mode and the alternate screen on stderr (stdout may
//! carry the report), keys read on a thread of their own, and the terminal given back on every
//! way out: [`Drop`], and a panic hook for a panic anywhere.
use std::{
    io::{self, IsTerminal, Stderr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use ratatui::{
    backend::CrosstermBackend,
    crossterm::{
        cursor,
        event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
        execute, terminal,
    },
    Terminal,
};
use tokio::sync::mpsc;

use super::{model::View, screen};

/// Why the live view cannot run.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "--live needs a terminal on stderr (it draws there; the report still goes to stdout or -o)"
    )]
    NotATerminal,
    #[error("cannot set up the terminal for --live: {0}")]
    Terminal(#[source] io::Error),
}

/// True while this process holds the terminal in raw mode: restoring is done once.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Gives the terminal back (cooked mode, main screen, cursor shown), once.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stderr(), terminal::LeaveAlternateScreen, cursor::Show);
    }
}

/// The terminal, while the view owns it.
pub struct LiveTerminal {
    terminal: Terminal<CrosstermBackend<Stderr>>,
    quit: mpsc::UnboundedReceiver<()>,
    stop_keys: Arc<AtomicBool>,
    keys: Option<JoinHandle<()>>,
}

impl LiveTerminal {
    /// Takes the terminal over.
    pub fn open() -> Result<Self, LiveError> {
        if !io::stderr().is_terminal() {
            return Err(LiveError::NotATerminal);
        }
        // A panic prints on a restored terminal (the hook runs before the unwinding drops).
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode().map_err(LiveError::Terminal)?;
        ACTIVE.store(true, Ordering::SeqCst);
        let setup = execute!(io::stderr(), terminal::EnterAlternateScreen, cursor::Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stderr())));
        let terminal = match setup {
            Ok(t) => t,
            Err(e) => {
                restore();
                return Err(LiveError::Terminal(e));
            }
        };
        let (tx, quit) = mpsc::unbounded_channel();
        let stop_keys = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stop_keys);
        let keys = std::thread::Builder::new()
            .name("fsync-trace-keys".into())
            .spawn(move || read_keys(&tx, &stop))
            .map_err(LiveError::Terminal)?;
        Ok(LiveTerminal {
            terminal,
            quit,
            stop_keys,
            keys: Some(keys),
        })
    }

    /// Draws one frame; the number of rows that fit comes from the terminal's height.
    pub fn draw(&mut self, view: &View) -> io::Result<()> {
        self.terminal.draw(|f| screen::draw(f, view)).map(drop)
    }

    /// Rows of files that fit on the screen now.
    pub fn rows_that_fit(&self) -> usize {
        self.terminal.size().map_or(10, |s| {
            usize::from(s.height.saturating_sub(screen::CHROME_LINES))
        })
    }

    /// Resolves when the user pressed `q` (or Ctrl-C, which raw mode delivers as a key).
    pub async fn quit_requested(&mut self) {
        if self.quit.recv().await.is_none() {
            // The key reader is gone: never resolve again.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for LiveTerminal {
    fn drop(&mut self) {
        self.stop_keys.store(true, Ordering::SeqCst);
        if let Some(k) = self.keys.take() {
            let _ = k.join();
        }
        restore();
    }
}

/// Polls (so it can stop) and sends one message per quit key.
fn read_keys(quit: &mpsc::UnboundedSender<()>, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match event::poll(Duration::from_millis(100)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let Ok(Event::Key(k)) = event::read() else {
            continue;
        };
        let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
        let q = matches!(k.code, KeyCode::Char('q' | 'Q'));
        if k.kind == KeyEventKind::Press && (q || ctrl_c) && quit.send(()).is_err() {
            return;
        }
    }
}
