// A fieldset of checkboxes over a list of keys (languages, topics, staff): the chosen keys
// in, the new list out.
export function Choices(props: {
  legend: string;
  options: { key: string; label: string }[];
  chosen: string[];
  onChange: (chosen: string[]) => void;
}) {
  return (
    <fieldset>
      <legend>{props.legend}</legend>
      {props.options.map((o) => (
        <label key={o.key} className="inline">
          <input
            type="checkbox"
            checked={props.chosen.includes(o.key)}
            onChange={() =>
              props.onChange(
                props.chosen.includes(o.key)
                  ? props.chosen.filter((k) => k !== o.key)
                  : [...props.chosen, o.key],
              )
            }
          />
          {o.label}
        </label>
      ))}
    </fieldset>
  );
}
