// What opens over the page (menus, the node search, the full-size view, the depth view, the mask
// painter, questions) and the rule they share: Escape closes the one opened last.

const open = []; // close functions, the newest last

document.addEventListener(
  "keydown",
  (event) => {
    if (event.key !== "Escape" || !open.length) return;
    event.preventDefault();
    event.stopPropagation(); // one Escape closes one thing, and is no canvas or text-box shortcut
    open.pop()();
  },
  true,
);

/** Call `close` when Escape is pressed; the returned function forgets it (for an overlay closed otherwise). */
export function closeOnEscape(close) {
  const entry = () => close();
  open.push(entry);
  return () => {
    const index = open.indexOf(entry);
    if (index >= 0) open.splice(index, 1);
  };
}

/** Ask a yes-or-no question over the page; true when `confirm` is chosen, false for the other button or Escape. */
export function askToConfirm(message, confirm = "OK", cancel = "Cancel") {
  return new Promise((resolve) => {
    const backdrop = document.createElement("div");
    backdrop.className = "dialog-backdrop";
    backdrop.dataset.testid = "confirm-dialog";
    backdrop.innerHTML = `<div class="dialog" role="alertdialog"><p></p><div class="actions">
      <button data-testid="confirm-cancel"></button><button class="primary" data-testid="confirm-ok"></button></div></div>`;
    backdrop.querySelector("p").textContent = message;
    const [no, yes] = backdrop.querySelectorAll("button");
    no.textContent = cancel;
    yes.textContent = confirm;
    const answer = (value) => {
      forget();
      backdrop.remove();
      resolve(value);
    };
    const forget = closeOnEscape(() => answer(false));
    no.addEventListener("click", () => answer(false));
    yes.addEventListener("click", () => answer(true));
    document.body.append(backdrop);
    yes.focus();
  });
}
