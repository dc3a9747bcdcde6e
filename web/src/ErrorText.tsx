// An error in plain words (already translated), announced to screen readers.
export function ErrorText(props: { text: string | null; id?: string }) {
  if (!props.text) return null;
  return (
    <p id={props.id} className="error" role="alert">
      {props.text}
    </p>
  );
}
