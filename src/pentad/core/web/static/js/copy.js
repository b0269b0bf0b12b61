// Copy buttons: <button data-copy="ID" hidden> copies the value (inputs) or the list items of element ID.
// The buttons stay hidden without JavaScript or a clipboard; the secret remains selectable on the page.

function textOf(target) {
  if (target instanceof HTMLInputElement) return target.value;
  const items = target.querySelectorAll("li");
  return items.length ? Array.from(items, (item) => item.textContent.trim()).join("\n") : target.textContent;
}

for (const button of document.querySelectorAll("button[data-copy]")) {
  const target = document.getElementById(button.dataset.copy);
  if (!target || !navigator.clipboard) continue;
  const status = button.parentElement.querySelector(".copy-status");
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(textOf(target));
      if (status) status.textContent = "Copied.";
    } catch {
      if (target instanceof HTMLInputElement) target.select();
      if (status) status.textContent = "Copying failed; select the text and copy it yourself.";
    }
  });
}
