// The app's shell: which screen shows, the top bar (language, help, quick exit) and the
// event loop. Screens change in memory only: the address bar and the browser history never
// show where the person is or with whom (a shared family phone must not tell).
import { useCallback, useEffect, useRef, useState } from "react";
import { useTranslation } from "react-i18next";
import type { ConversationInfo, Event, PartyIntroduction, SessionInfo } from "peerbridge-web";
import { client, errorKey, languageChanged, protection } from "./sdk";
import i18n, { LANGUAGES, setLanguage, type Language } from "./i18n";
import { Join } from "./screens/Join";
import { Privacy } from "./screens/Privacy";
import { Home } from "./screens/Home";
import { Chat } from "./screens/Chat";
import { Help } from "./screens/Help";
import { Lock } from "./screens/Lock";
import { StaffLogin } from "./screens/StaffLogin";
import { Console } from "./screens/hp/Console";
import { PeerSelf } from "./screens/PeerSelf";
import { registerWorker } from "./push";
import { ErrorText } from "./ErrorText";

/** Where "quick exit" goes: an ordinary, harmless page. */
const EXIT_URL = "https://www.yr.no/";
const PRIVACY_KEY = "pb.privacyConfirmed";
/** With an app lock, this long without input locks the app again. */
const AUTO_LOCK_MS = 5 * 60 * 1000;

type Screen =
  | { name: "loading" }
  | { name: "locked" }
  | { name: "elsewhere" }
  | { name: "join"; code: string; authority: string }
  | { name: "privacy" }
  | { name: "home" }
  | { name: "chat"; intro: PartyIntroduction }
  | { name: "supervision"; conversation: ConversationInfo }
  | { name: "self" }
  | { name: "staff" }
  | { name: "console" };

export type Listener = (events: Event[]) => void;

/** The invite code from a join link (`/join#code=…&authority=…`), removed from the address
 * at once, with the clinic's key the inviting HP's app put beside it (pinned at enrolment). */
function codeFromLink(): { code: string; authority: string } {
  const m = /^#code=([A-Za-z0-9-]+)(?:&authority=([A-Za-z0-9_-]{43}))?$/.exec(location.hash);
  if (location.pathname === "/join" || m) history.replaceState(null, "", "/");
  return { code: m?.[1] ?? "", authority: m?.[2] ?? "" };
}

export function App() {
  const { t } = useTranslation();
  const [screen, setScreen] = useState<Screen>({ name: "loading" });
  const [session, setSession] = useState<SessionInfo | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [helpOpen, setHelpOpen] = useState(false);
  const [online, setOnline] = useState(navigator.onLine);
  const [passcodeSet, setPasscodeSet] = useState(false);
  const listeners = useRef(new Set<Listener>());
  const linkCode = useRef(codeFromLink());

  const subscribe = useCallback((l: Listener) => {
    listeners.current.add(l);
    return () => void listeners.current.delete(l);
  }, []);

  const signedIn = useCallback((s: SessionInfo) => {
    setSession(s);
    const confirmed = localStorage.getItem(PRIVACY_KEY) === "1";
    if (s.role === "hp" || s.role === "clinic_admin") setScreen({ name: "console" });
    else if (s.role === "service_user" && !confirmed) setScreen({ name: "privacy" });
    else setScreen({ name: "home" });
  }, []);

  const opened = useCallback(() => {
    client()
      .then(async (c) => {
        const s = await c.session();
        if (s) signedIn(s);
        else setScreen({ name: "join", ...linkCode.current });
      })
      .catch((e) => {
        // Another tab holds this account: this one waits instead of touching the store.
        if ((e as { code?: string })?.code === "account_in_use") {
          setScreen({ name: "elsewhere" });
          return;
        }
        setError(i18n.t(errorKey(e)));
        setScreen({ name: "join", ...linkCode.current });
      });
  }, [signedIn]);

  // The service worker shows content-free notifications for push wake-ups.
  useEffect(() => {
    void registerWorker();
  }, []);

  // Once per page: a language change must not send the person back to the start.
  useEffect(() => {
    protection()
      .then((p) => {
        setPasscodeSet(p === "passcode");
        if (p === "passcode") setScreen({ name: "locked" });
        else opened();
      })
      .catch((e) => setError(i18n.t(errorKey(e))));
  }, [opened]);

  // The app lock: a reload drops the open store from memory and starts at the lock screen.
  useEffect(() => {
    if (!passcodeSet || !session) return;
    let last = Date.now();
    const touch = () => {
      last = Date.now();
    };
    addEventListener("pointerdown", touch);
    addEventListener("keydown", touch);
    const timer = setInterval(() => {
      if (Date.now() - last > AUTO_LOCK_MS) location.reload();
    }, 15000);
    return () => {
      removeEventListener("pointerdown", touch);
      removeEventListener("keydown", touch);
      clearInterval(timer);
    };
  }, [passcodeSet, session]);

  // Once signed in: events from the SDK's loop (already stored) reach every screen.
  useEffect(() => {
    if (!session) return;
    let stopped = false;
    void client().then((c) =>
      c.start(
        (events) => {
          if (!stopped) listeners.current.forEach((l) => l(events));
        },
        (e) => setError(i18n.t(errorKey(e))),
      ),
    );
    return () => {
      stopped = true;
    };
  }, [session]);

  useEffect(() => {
    const on = () => setOnline(true);
    const off = () => setOnline(false);
    addEventListener("online", on);
    addEventListener("offline", off);
    return () => {
      removeEventListener("online", on);
      removeEventListener("offline", off);
    };
  }, []);

  const quickExit = () => {
    void client().then((c) => c.suspend());
    document.body.replaceChildren();
    location.replace(EXIT_URL);
  };

  let main;
  switch (screen.name) {
    case "loading":
      main = <p role="status">{t("app.loading")}</p>;
      break;
    case "elsewhere":
      main = (
        <section aria-labelledby="elsewhere-title">
          <h1 id="elsewhere-title">{t("elsewhere.title")}</h1>
          <p>{t("errors.account_in_use")}</p>
          <button type="button" onClick={() => location.reload()}>
            {t("elsewhere.retry")}
          </button>
        </section>
      );
      break;
    case "locked":
      main = <Lock onUnlocked={opened} />;
      break;
    case "join":
      main = (
        <Join
          initialCode={screen.code}
          authority={screen.authority}
          onJoined={signedIn}
          onStaff={() => setScreen({ name: "staff" })}
        />
      );
      break;
    case "staff":
      main = (
        <StaffLogin
          onSignedIn={signedIn}
          onBack={() => setScreen({ name: "join", code: "", authority: "" })}
        />
      );
      break;
    case "console":
      main = session && <Console session={session} subscribe={subscribe} />;
      break;
    case "self":
      main = <PeerSelf subscribe={subscribe} onBack={() => setScreen({ name: "home" })} />;
      break;
    case "supervision":
      main = (
        <Chat
          conversation={screen.conversation.id}
          title={t("supervision.chat")}
          counterpart={t("supervision.other")}
          peer={false}
          online={online}
          subscribe={subscribe}
          onBack={() => setScreen({ name: "home" })}
        />
      );
      break;
    case "privacy":
      main = (
        <Privacy
          onConfirm={() => {
            localStorage.setItem(PRIVACY_KEY, "1");
            setScreen({ name: "home" });
          }}
        />
      );
      break;
    case "home":
      main = (
        <Home
          subscribe={subscribe}
          peer={session?.role === "peer"}
          onOpen={(intro) => setScreen({ name: "chat", intro })}
          onSelf={() => setScreen({ name: "self" })}
          onSupervision={(conversation) => setScreen({ name: "supervision", conversation })}
          passcodeSet={passcodeSet}
          onPasscodeSet={() => setPasscodeSet(true)}
        />
      );
      break;
    case "chat":
      main = (
        <Chat
          conversation={screen.intro.conversation_id ?? ""}
          title={t("chat.with", { alias: screen.intro.counterpart_alias })}
          counterpart={screen.intro.counterpart_alias}
          intro={screen.intro}
          onHelp={() => setHelpOpen(true)}
          peer={session?.role === "peer"}
          online={online}
          subscribe={subscribe}
          onBack={() => setScreen({ name: "home" })}
        />
      );
      break;
  }

  return (
    <>
      <header className="bar">
        <span className="name">{t("app.name")}</span>
        <label htmlFor="language" className="visually-hidden">
          {t("nav.language")}
        </label>
        <select
          id="language"
          value={i18n.language}
          onChange={(e) => {
            setLanguage(e.target.value as Language);
            languageChanged(e.target.value as Language);
          }}
        >
          {LANGUAGES.map((l) => (
            <option key={l} value={l}>
              {t(`languages.${l}`)}
            </option>
          ))}
        </select>
        {session && (
          <button type="button" className="help" onClick={() => setHelpOpen(true)}>
            {t("nav.help")}
          </button>
        )}
        {session && passcodeSet && (
          <button type="button" className="secondary" onClick={() => location.reload()}>
            {t("lock.now")}
          </button>
        )}
        <button type="button" className="exit" onClick={quickExit} title={t("nav.quickExitHint")}>
          {t("nav.quickExit")}
        </button>
      </header>
      {!online && (
        <p className="offline" role="status">
          {t("nav.offline")}
        </p>
      )}
      <ErrorText text={error} />
      <main>
        {helpOpen ? (
          <Help
            conversation={screen.name === "chat" ? (screen.intro.conversation_id ?? null) : null}
            subscribe={subscribe}
            onClose={() => setHelpOpen(false)}
          />
        ) : (
          main
        )}
      </main>
    </>
  );
}
