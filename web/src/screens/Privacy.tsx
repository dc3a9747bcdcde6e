// Before the first introduction: what stays private and when a clinician is told, in plain
// words, confirmed by the person.
import { useTranslation } from "react-i18next";

export function Privacy(props: { onConfirm: () => void }) {
  const { t } = useTranslation();
  return (
    <section aria-labelledby="privacy-title">
      <h1 id="privacy-title">{t("privacy.title")}</h1>
      <ul className="plain">
        <li>{t("privacy.private")}</li>
        <li>{t("privacy.alias")}</li>
        <li>{t("privacy.clinician")}</li>
        <li>{t("privacy.help")}</li>
      </ul>
      <button type="button" onClick={props.onConfirm}>
        {t("privacy.confirm")}
      </button>
    </section>
  );
}
