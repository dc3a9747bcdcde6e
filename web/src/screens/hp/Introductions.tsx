// The clinic's introductions: state, both answers, open boundary reports; the HP can pause,
// resume or close one and mark a report handled.
import { useCallback, useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import type { BoundaryReport, IntroductionDetail } from "peerbridge-web";
import { client } from "../../sdk";
import { useAction } from "../../useAction";
import { ErrorText } from "../../ErrorText";
import { when } from "../../format";

export function Introductions(props: { clinic: string }) {
  const { t } = useTranslation();
  const { error, run } = useAction();
  const [list, setList] = useState<IntroductionDetail[] | null>(null);
  const [reports, setReports] = useState<Record<string, BoundaryReport[]>>({});

  const load = useCallback(async () => {
    const all = await (await client()).clinicIntroductions(props.clinic);
    setList([...all].sort((a, b) => b.created_at.localeCompare(a.created_at)));
  }, [props.clinic]);

  useEffect(() => {
    void run(load);
  }, [load, run]);

  const action = (id: string, a: "pause" | "resume" | "close") =>
    run(async () => {
      await (await client()).hpIntroductionAction(props.clinic, id, a);
      await load();
    });

  const showReports = (id: string) =>
    run(async () => {
      const r = await (await client()).boundaryReports(props.clinic, id);
      setReports((m) => ({ ...m, [id]: r }));
    });

  return (
    <section aria-labelledby="intros-title">
      <h2 id="intros-title">{t("intros.title")}</h2>
      <ErrorText text={error} />
      {list === null ? (
        <p role="status">{t("app.loading")}</p>
      ) : list.length === 0 ? (
        <p>{t("intros.none")}</p>
      ) : (
        <ul className="cards">
          {list.map((i) => (
            <li key={i.id} className="card">
              <p>
                <strong>
                  {i.service_user_alias} – {i.peer_alias}
                </strong>{" "}
                <span className="muted">
                  {t(`introState.${i.state}`)}, {when(i.created_at)}
                </span>
              </p>
              <p className="muted">
                {t("intros.answers", {
                  user: t(`response.${i.service_user_response}`),
                  peer: t(`response.${i.peer_response}`),
                })}
              </p>
              <div className="actions">
                {i.state === "active" && (
                  <button type="button" className="secondary" onClick={() => action(i.id, "pause")}>
                    {t("intros.pause")}
                  </button>
                )}
                {i.state === "paused" && (
                  <button
                    type="button"
                    className="secondary"
                    onClick={() => action(i.id, "resume")}
                  >
                    {t("intros.resume")}
                  </button>
                )}
                {i.state !== "ended" && (
                  <button type="button" className="secondary" onClick={() => action(i.id, "close")}>
                    {t("intros.close")}
                  </button>
                )}
                {i.open_reports > 0 && (
                  <button type="button" onClick={() => showReports(i.id)}>
                    {t("intros.reports", { count: i.open_reports })}
                  </button>
                )}
              </div>
              {(reports[i.id] ?? []).map((r) => (
                <div key={r.id} className="card">
                  <p>
                    {t(`boundary.${r.category}`)} – {when(r.created_at)}
                  </p>
                  {r.note && <blockquote>{r.note}</blockquote>}
                  {!r.handled_at && (
                    <button
                      type="button"
                      className="secondary"
                      onClick={() =>
                        run(async () => {
                          await (await client()).markReportHandled(props.clinic, i.id, r.id);
                          await showReports(i.id);
                          await load();
                        })
                      }
                    >
                      {t("intros.handled")}
                    </button>
                  )}
                </div>
              ))}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
