// A QR code drawn as SVG from the `qrcode` package's module matrix (no image, no data URL,
// nothing the strict CSP would refuse).
import QRCode from "qrcode";

export function Qr(props: { text: string; label: string }) {
  const qr = QRCode.create(props.text, { errorCorrectionLevel: "M" });
  const n = qr.modules.size;
  const quiet = 4;
  let d = "";
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.modules.get(r, c)) d += `M${c + quiet},${r + quiet}h1v1h-1z`;
    }
  }
  const size = n + 2 * quiet;
  return (
    <svg
      className="qr"
      role="img"
      aria-label={props.label}
      viewBox={`0 0 ${size} ${size}`}
      width={size * 6}
      height={size * 6}
      shapeRendering="crispEdges"
    >
      <rect width={size} height={size} fill="#fff" />
      <path d={d} fill="#000" />
    </svg>
  );
}
