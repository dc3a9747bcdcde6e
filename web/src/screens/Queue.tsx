// The HP's escalation queue: most severe first, then oldest (the server's order), live as
// flags change, with an unmistakable banner while an imminent flag is open.
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import type { Flag } from "peerbridge-web";
import { client, errorKey } from "../sdk";
import type { Listener } from "../App";
import { ErrorText } from "../ErrorText";

type Filter = "all" | "mine" | "open" | "acknowledged" | "resolved";

export function Queue(props: {
  subscribe: (l: Listener) => () => void;
  onOpen: (f: Flag) => void;
}) {
  const { t } = useTranslation();
  const [flags, setFlags] = useState<Flag[] | null>(null);
  const [filter, setFilter] = useState<Filter>("all");
  const [error, setError] = useState<string | null>(null);
  const [now, setNow] = useState(() => Date.now());

  const load = useCallback(async () => {
    try {
      setFlags(await (await client()).flags());
      setNow(Date.now());
    } catch (e) {
      setError(t(errorKey(e)));
    }
  }, [t]);

  const { subscribe } = props;
  useEffect(() => {
    void load();
    const stop = subscribe((events) => {
      if (events.some((e) => e.type === "flag_changed")) void load();
    });
    const tick = setInterval(() => void load(), 30000);
    return () => {
      stop();
      clearInterval(tick);
    };
  }, [load, subscribe]);

  const shown = (flags ?? []).filter((f) =>
    filter === "all" ? true : filter === "mine" ? f.mine : f.status === filter,
  );
  const imminent = (flags ?? []).filter((f) => f.severity === "imminent" && f.status === "open");

  return (
    <section aria-labelledby="queue-title">
      <h1 id="queue-title">{t("queue.title")}</h1>
      {imminent.length > 0 && (
        <p className="alarm" role="alert">
          {t("queue.imminent", { count: imminent.length })}
        </p>
      )}
      <ErrorText text={error} />
      <label htmlFor="filter">{t("queue.filterLabel")}</label>
      <select id="filter" value={filter} onChange={(e) => setFilter(e.target.value as Filter)}>
        {(["all", "mine", "open", "acknowledged", "resolved"] as const).map((f) => (
          <option key={f} value={f}>
            {t(`queue.${f}`)}
          </option>
        ))}
      </select>
      {flags === null ? (
        <p role="status">{t("app.loading")}</p>
      ) : shown.length === 0 ? (
        <p>{t("queue.empty")}</p>
      ) : (
        <ul className="cards">
          {shown.map((f) => (
            <li key={f.id} className={`card severity-${f.severity}`}>
              <button type="button" className="flag" onClick={() => props.onOpen(f)}>
                {t("queue.openFlag", {
                  category: t(`category.${f.category}`),
                  severity: t(`severity.${f.severity}`),
                  age: t("queue.age", {
                    minutes: Math.max(0, Math.round((now - Date.parse(f.created_at)) / 60000)),
                  }),
                })}
              </button>
              <p className="muted">{t(`status.${f.status}`)}</p>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
