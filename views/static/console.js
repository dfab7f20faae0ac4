// The console's one script (SPEC §11): conveniences only; every page works without it.
// Copy buttons: <button type="button" data-copy="ID" hidden>Copy</button> copies the text of
// element ID. They stay hidden without this script (or without a clipboard).
'use strict';
document.addEventListener('DOMContentLoaded', function () {
  if (!navigator.clipboard) return;
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    var target = document.getElementById(button.getAttribute('data-copy'));
    if (!target) return;
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener('click', function () {
      var text = 'value' in target ? target.value : target.textContent;
      navigator.clipboard.writeText(text.trim()).then(
        function () { button.textContent = 'Copied'; },
        function () { button.textContent = 'Copy failed: select the text instead'; },
      );
      setTimeout(function () { button.textContent = label; }, 4000);
    });
  });
});
