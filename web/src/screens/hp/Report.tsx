// The consultation report for a period, downloaded as CSV (made in the browser from the
// API's text; nothing leaves for a third party).
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import { client } from "../../sdk";
import { useAction } from "../../useAction";
import { ErrorText } from "../../ErrorText";
import { today } from "../../format";

export function Report(props: { clinic: string }) {
  const { t } = useTranslation();
  const { error, busy, run } = useAction();
  const [from, setFrom] = useState(() => today().slice(0, 8) + "01");
  const [to, setTo] = useState(today);
  const [rows, setRows] = useState<number | null>(null);

  const download = async (e: FormEvent) => {
    e.preventDefault();
    await run(async () => {
      const c = await client();
      const csv = await c.consultationReportCsv(props.clinic, from, to);
      setRows((await c.consultationReport(props.clinic, from, to)).rows.length);
      const url = URL.createObjectURL(new Blob([csv], { type: "text/csv;charset=utf-8" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `consultations-${from}-${to}.csv`;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    });
  };

  return (
    <section aria-labelledby="report-title">
      <h1 id="report-title">{t("consultReport.title")}</h1>
      <form onSubmit={download}>
        <label htmlFor="report-from">{t("consultReport.from")}</label>
        <input
          id="report-from"
          type="date"
          value={from}
          onChange={(e) => setFrom(e.target.value)}
        />
        <label htmlFor="report-to">{t("consultReport.to")}</label>
        <input id="report-to" type="date" value={to} onChange={(e) => setTo(e.target.value)} />
        <button type="submit" disabled={busy}>
          {t("consultReport.download")}
        </button>
      </form>
      <ErrorText text={error} />
      {rows !== null && <p role="status">{t("consultReport.rows", { count: rows })}</p>}
    </section>
  );
}
