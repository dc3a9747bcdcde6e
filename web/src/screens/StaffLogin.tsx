// Staff sign-in on a clinic workstation: password and authenticator code, or the first-time
// set-up with the setup code (password, then the authenticator key, then its code). The
// device gets its escalation key so flags can be sealed to it.
import { useState, type FormEvent } from "react";
import { useTranslation } from "react-i18next";
import type { SessionInfo } from "peerbridge-web";
import { client, errorKey } from "../sdk";
import { ErrorText } from "../ErrorText";

type Step = "login" | "setup" | "confirm";

export function StaffLogin(props: { onSignedIn: (s: SessionInfo) => void; onBack: () => void }) {
  const { t } = useTranslation();
  const [step, setStep] = useState<Step>("login");
  const [login, setLogin] = useState("");
  const [password, setPassword] = useState("");
  const [totp, setTotp] = useState("");
  const [setupCode, setSetupCode] = useState("");
  const [secret, setSecret] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(t(errorKey(e)));
    } finally {
      setBusy(false);
    }
  };

  const ready = async (s: SessionInfo) => {
    const c = await client();
    await c.ensureKeyPackages();
    await c.ensureEscalationKey();
    props.onSignedIn(s);
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void run(async () => {
      const c = await client();
      if (step === "login") {
        await ready(await c.staffLogin(login.trim(), password, totp.trim(), t("app.name")));
      } else if (step === "setup") {
        const p = await c.beginStaffSetup(setupCode.trim(), password);
        setSecret(p.totp_secret);
        setStep("confirm");
      } else {
        await ready(await c.completeStaffSetup(setupCode.trim(), totp.trim(), t("app.name")));
      }
    });
  };

  const field = (
    id: string,
    label: string,
    value: string,
    set: (v: string) => void,
    type = "text",
    auto = "off",
  ) => (
    <>
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type={type}
        autoComplete={auto}
        required
        value={value}
        onChange={(e) => set(e.target.value)}
      />
    </>
  );

  return (
    <form onSubmit={submit} aria-labelledby="staff-title">
      <h1 id="staff-title">{step === "login" ? t("staff.title") : t("staff.setupTitle")}</h1>
      {step === "login" && (
        <>
          {field("login", t("staff.login"), login, setLogin, "text", "username")}
          {field(
            "password",
            t("staff.password"),
            password,
            setPassword,
            "password",
            "current-password",
          )}
          {field("totp", t("staff.totp"), totp, setTotp, "text", "one-time-code")}
        </>
      )}
      {step === "setup" && (
        <>
          {field("setup", t("staff.setupCode"), setupCode, setSetupCode)}
          {field(
            "new-password",
            t("staff.newPassword"),
            password,
            setPassword,
            "password",
            "new-password",
          )}
        </>
      )}
      {step === "confirm" && (
        <>
          <p>{t("staff.secret")}</p>
          <p>
            <code className="secret">{secret}</code>
          </p>
          {field("totp", t("staff.totp"), totp, setTotp, "text", "one-time-code")}
        </>
      )}
      <ErrorText text={error} />
      <div className="actions">
        <button type="submit" disabled={busy}>
          {step === "login"
            ? t("staff.submit")
            : step === "setup"
              ? t("staff.next")
              : t("staff.finish")}
        </button>
        {step === "login" && (
          <button type="button" className="secondary" onClick={() => setStep("setup")}>
            {t("staff.setupLink")}
          </button>
        )}
        <button type="button" className="secondary" onClick={props.onBack}>
          {t("staff.back")}
        </button>
      </div>
    </form>
  );
}
