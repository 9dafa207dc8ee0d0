// The console's only script: copy buttons (`data-copy` names the field to copy). Pages
// work without it; the secret can always be selected by hand.
for (const button of document.querySelectorAll('button[data-copy]')) {
  button.addEventListener('click', async () => {
    const field = document.getElementById(button.dataset.copy);
    if (!field) return;
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      button.textContent = button.dataset.copied || button.textContent;
    } catch {
      // No clipboard access: the text stays selected for Ctrl+C.
    }
  });
}
