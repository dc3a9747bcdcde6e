// Clinic admins: who is on duty and who is next when a flag is not acknowledged in time
// (always, or in shifts on the clinic's clock), who is on call and where people are pointed
// when nobody is on duty, the deadlines and the follow-up time, the notice a person receives when a clinician is asked to check in (in each
// language), the clinic's key that certifies who may read quoted messages, the crisis resources shown under "I need help now", and staff accounts.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type {
  CrisisResource,
  EscalationSettings,
  Locale,
  StaffCreated,
  StaffRole,
  UserSummary,
} from "peerbridge-web";
import { client } from "../../sdk";
import { useAction } from "../../useAction";
import { ErrorText } from "../../ErrorText";
import { Choices } from "../../Choices";
import { lookUpNames, userLabel } from "../../people";
import { Shifts } from "./Shifts";
import { EscalationKeys } from "./EscalationKeys";

const LOCALES: Locale[] = ["nb", "nn", "en"];

export function ClinicSettings(props: { clinic: string }) {
  const { t } = useTranslation();
  const { error, busy, run } = useAction();
  const [settings, setSettings] = useState<EscalationSettings | null>(null);
  const [staff, setStaff] = useState<UserSummary[]>([]);
  const [names, setNames] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState<string | null>(null);
  const [locale, setLocale] = useState<Locale>("nb");
  const [resources, setResources] = useState<CrisisResource[]>([]);
  const [login, setLogin] = useState("");
  const [name, setName] = useState("");
  const [role, setRole] = useState<StaffRole>("hp");
  const [created, setCreated] = useState<StaffCreated | null>(null);

  const load = useCallback(async () => {
    const c = await client();
    setSettings(await c.escalationSettings(props.clinic));
    const users = await c.clinicUsers(props.clinic);
    setStaff(
      users.filter((u) => (u.role === "hp" || u.role === "clinic_admin") && u.status === "active"),
    );
  }, [props.clinic]);

  useEffect(() => {
    void run(load);
  }, [load, run]);

  useEffect(() => {
    let current = true;
    void run(async () => {
      const list = await (await client()).crisisResources(locale);
      if (current) setResources(list.resources);
    });
    return () => {
      current = false;
    };
  }, [locale, run]);

  const showNames = () => run(async () => setNames(await lookUpNames(props.clinic, staff)));

  const number = (
    key:
      | "imminent_minutes"
      | "urgent_minutes"
      | "concerning_minutes"
      | "routine_hour"
      | "followup_minutes",
  ) => (
    <>
      <label htmlFor={`s-${key}`}>{t(`clinic.${key}`)}</label>
      <input
        id={`s-${key}`}
        type="number"
        min={key === "routine_hour" ? 0 : 1}
        value={settings ? (settings[key] ?? 120) : 0}
        onChange={(e) => settings && setSettings({ ...settings, [key]: Number(e.target.value) })}
      />
    </>
  );

  const saveSettings = async (e: FormEvent) => {
    e.preventDefault();
    if (!settings) return;
    setSaved(null);
    // A contact without a phone number is no contact.
    const contact = settings.out_of_hours?.contact;
    const body: EscalationSettings = {
      ...settings,
      out_of_hours: {
        on_call: settings.out_of_hours?.on_call ?? [],
        contact: contact && contact.phone.trim() ? contact : null,
      },
    };
    const ok = await run(async () => {
      setSettings(await (await client()).setEscalationSettings(props.clinic, body));
      return true;
    });
    if (ok) setSaved("settings");
  };

  const saveResources = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(null);
    const ok = await run(async () => {
      await (await client()).setCrisisResources(props.clinic, { locale, resources });
      return true;
    });
    if (ok) setSaved("resources");
  };

  const addStaff = async (e: FormEvent) => {
    e.preventDefault();
    const made = await run(async () =>
      (await client()).createStaff(props.clinic, {
        role,
        login: login.trim(),
        display_name: name.trim(),
        phone: null,
      }),
    );
    if (made) {
      setCreated(made);
      setLogin("");
      setName("");
      await run(load);
    }
  };

  return (
    <section aria-labelledby="clinic-title">
      <h1 id="clinic-title">{t("clinic.title")}</h1>
      <ErrorText text={error} />
      {settings && (
        <form onSubmit={saveSettings} className="card">
          <h2>{t("clinic.duty")}</h2>
          <button type="button" className="secondary" onClick={showNames}>
            {t("clinic.showNames")}
          </button>
          {(["on_duty", "next_responders"] as const).map((key) => (
            <Choices
              key={key}
              legend={t(`clinic.${key}`)}
              options={staff.map((u) => ({ key: u.id, label: userLabel(u, names) }))}
              chosen={settings[key]}
              onChange={(chosen) => setSettings({ ...settings, [key]: chosen })}
            />
          ))}
          <Shifts
            shifts={settings.shifts ?? []}
            staff={staff}
            names={names}
            onChange={(shifts) => setSettings({ ...settings, shifts })}
          />
          <Choices
            legend={t("clinic.on_call")}
            options={staff
              .filter((u) => u.role === "hp")
              .map((u) => ({ key: u.id, label: userLabel(u, names) }))}
            chosen={settings.out_of_hours?.on_call ?? []}
            onChange={(on_call) =>
              setSettings({
                ...settings,
                out_of_hours: { contact: settings.out_of_hours?.contact ?? null, on_call },
              })
            }
          />
          <fieldset>
            <legend>{t("clinic.contact")}</legend>
            {(["phone", "label_nb", "label_nn", "label_en"] as const).map((field) => (
              <div key={field}>
                <label htmlFor={`ooh-${field}`}>{t(`clinic.contact_${field}`)}</label>
                <input
                  id={`ooh-${field}`}
                  value={settings.out_of_hours?.contact?.[field] ?? ""}
                  onChange={(e) => {
                    const empty = { phone: "", label_nb: "", label_nn: "", label_en: "" };
                    const contact = {
                      ...(settings.out_of_hours?.contact ?? empty),
                      [field]: e.target.value,
                    };
                    setSettings({
                      ...settings,
                      out_of_hours: { on_call: settings.out_of_hours?.on_call ?? [], contact },
                    });
                  }}
                />
              </div>
            ))}
          </fieldset>
          {number("imminent_minutes")}
          {number("urgent_minutes")}
          {number("concerning_minutes")}
          {number("routine_hour")}
          {number("followup_minutes")}
          {LOCALES.map((l) => {
            const key = `notice_${l}` as const;
            return (
              <div key={l}>
                <label htmlFor={`s-${key}`}>
                  {t("clinic.notice", { language: t(`languages.${l}`) })}
                </label>
                <textarea
                  id={`s-${key}`}
                  rows={2}
                  value={settings[key]}
                  onChange={(e) => setSettings({ ...settings, [key]: e.target.value })}
                />
              </div>
            );
          })}
          <button type="submit" disabled={busy}>
            {t("clinic.save")}
          </button>
          {saved === "settings" && <p role="status">{t("clinic.saved")}</p>}
        </form>
      )}

      <EscalationKeys />

      <form onSubmit={saveResources} className="card">
        <h2>{t("clinic.resources")}</h2>
        <label htmlFor="resources-locale">{t("nav.language")}</label>
        <select
          id="resources-locale"
          value={locale}
          onChange={(e) => setLocale(e.target.value as Locale)}
        >
          {LOCALES.map((l) => (
            <option key={l} value={l}>
              {t(`languages.${l}`)}
            </option>
          ))}
        </select>
        {resources.map((r, i) => (
          <fieldset key={i}>
            <legend>{t("clinic.resource", { n: i + 1 })}</legend>
            <label htmlFor={`r-label-${i}`}>{t("clinic.resourceLabel")}</label>
            <input
              id={`r-label-${i}`}
              value={r.label}
              onChange={(e) =>
                setResources(
                  resources.map((x, j) => (j === i ? { ...x, label: e.target.value } : x)),
                )
              }
            />
            <label htmlFor={`r-phone-${i}`}>{t("clinic.resourcePhone")}</label>
            <input
              id={`r-phone-${i}`}
              value={r.phone}
              onChange={(e) =>
                setResources(
                  resources.map((x, j) => (j === i ? { ...x, phone: e.target.value } : x)),
                )
              }
            />
            <button
              type="button"
              className="secondary"
              onClick={() => setResources(resources.filter((_, j) => j !== i))}
            >
              {t("clinic.remove")}
            </button>
          </fieldset>
        ))}
        <div className="actions">
          <button
            type="button"
            className="secondary"
            onClick={() =>
              setResources([...resources, { label: "", phone: "", description: null }])
            }
          >
            {t("clinic.addResource")}
          </button>
          <button type="submit" disabled={busy}>
            {t("clinic.save")}
          </button>
        </div>
        {saved === "resources" && <p role="status">{t("clinic.saved")}</p>}
      </form>

      <form onSubmit={addStaff} className="card">
        <h2>{t("clinic.staff")}</h2>
        <label htmlFor="staff-name">{t("clinic.staffName")}</label>
        <input
          id="staff-name"
          autoComplete="off"
          value={name}
          onChange={(e) => setName(e.target.value)}
        />
        <label htmlFor="staff-login">{t("clinic.staffLogin")}</label>
        <input
          id="staff-login"
          autoComplete="off"
          value={login}
          onChange={(e) => setLogin(e.target.value)}
        />
        <label htmlFor="staff-role">{t("clinic.staffRole")}</label>
        <select id="staff-role" value={role} onChange={(e) => setRole(e.target.value as StaffRole)}>
          <option value="hp">{t("role.hp")}</option>
          <option value="clinic_admin">{t("role.clinic_admin")}</option>
        </select>
        <button type="submit" disabled={busy}>
          {t("clinic.createStaff")}
        </button>
        {created && (
          <p role="status">
            {t("clinic.setupCode")} <code className="secret">{created.setup_code}</code>
          </p>
        )}
      </form>
    </section>
  );
}
