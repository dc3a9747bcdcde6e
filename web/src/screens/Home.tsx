// A party's home: the clinic's introduction proposals under aliases (accept or decline) and
// the open conversations; for a peer supporter also their own page and the supervision
// conversations with their HPs; notifications and the app lock.
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import type { ConversationInfo, PartyIntroduction } from "peerbridge-web";
import { client, errorKey } from "../sdk";
import type { Listener } from "../App";
import { AppLock } from "./AppLock";
import { Notifications } from "./Notifications";
import { Install } from "./Install";
import { ErrorText } from "../ErrorText";

export function Home(props: {
  subscribe: (l: Listener) => () => void;
  peer: boolean;
  onOpen: (intro: PartyIntroduction) => void;
  onSelf: () => void;
  onSupervision: (c: ConversationInfo) => void;
  passcodeSet: boolean;
  onPasscodeSet: () => void;
}) {
  const { t } = useTranslation();
  const [intros, setIntros] = useState<PartyIntroduction[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [supervision, setSupervision] = useState<ConversationInfo[]>([]);

  const load = useCallback(async () => {
    try {
      const c = await client();
      setIntros(await c.introductions());
      setSupervision((await c.conversations()).filter((x) => x.kind === "supervision"));
    } catch (e) {
      setError(t(errorKey(e)));
    }
  }, [t]);

  const { subscribe } = props;
  useEffect(() => {
    void load();
    return subscribe(() => void load());
  }, [load, subscribe]);

  const act = async (f: () => Promise<unknown>) => {
    setError(null);
    try {
      await f();
      await load();
    } catch (e) {
      setError(t(errorKey(e)));
    }
  };

  return (
    <section aria-labelledby="home-title">
      <h1 id="home-title">{t("home.title")}</h1>
      <ErrorText text={error} />
      <h2>{t("home.introductions")}</h2>
      {intros === null ? (
        <p role="status">{t("app.loading")}</p>
      ) : intros.length === 0 ? (
        <p>{t("home.none")}</p>
      ) : (
        <ul className="cards">
          {intros.map((i) => (
            <li key={i.id} className="card">
              <p>{t("home.proposed", { alias: i.counterpart_alias })}</p>
              <blockquote>{i.blurb}</blockquote>
              <p className="muted">{t("home.you", { alias: i.my_alias })}</p>
              {i.state === "ended" ? (
                <p>{t("home.ended")}</p>
              ) : i.my_response === "declined" ? (
                <p>{t("home.declined")}</p>
              ) : i.my_response === "pending" ? (
                <div className="actions">
                  <button
                    type="button"
                    onClick={() => act(async () => (await client()).acceptIntroduction(i.id))}
                  >
                    {t("home.accept", { alias: i.counterpart_alias })}
                  </button>
                  <button
                    type="button"
                    className="secondary"
                    onClick={() => act(async () => (await client()).declineIntroduction(i.id))}
                  >
                    {t("home.decline")}
                  </button>
                </div>
              ) : i.conversation_id ? (
                <button type="button" onClick={() => props.onOpen(i)}>
                  {t("home.open", { alias: i.counterpart_alias })}
                </button>
              ) : (
                <p>{t("home.waiting")}</p>
              )}
            </li>
          ))}
        </ul>
      )}
      {props.peer && (
        <>
          <h2>{t("home.peerTitle")}</h2>
          <div className="actions">
            <button type="button" className="secondary" onClick={props.onSelf}>
              {t("home.self")}
            </button>
            {supervision.map((c) => (
              <button
                key={c.id}
                type="button"
                className="secondary"
                onClick={() => props.onSupervision(c)}
              >
                {t("home.supervision", { count: c.unread })}
              </button>
            ))}
          </div>
        </>
      )}
      <Notifications />
      <Install />
      <AppLock locked={props.passcodeSet} onSet={props.onPasscodeSet} />
    </section>
  );
}
