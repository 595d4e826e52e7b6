/* Accessibility fixes of the markup of Dash's own components, where their props cannot set it
 * (docs/ACCESSIBILITY.md, "Fixed from the app"): dcc.Dropdown, dcc.DatePickerRange /
 * DatePickerSingle and dash_table.DataTable as Dash 4.4.1 draws them. Dash serves this file from
 * webapp/assets/ with every page (the Content-Security-Policy allows the app's own scripts). Each
 * fix only adds or sets attributes React does not manage, is idempotent, and runs again whenever
 * the page changes. When a Dash release fixes one, remove it: tests/test_browser_a11y.py tells.
 */
(function () {
  "use strict";

  var seq = 0;

  function labelOf(control) {
    if (!control || !control.id) return null;
    return document.querySelector('label[for="' + CSS.escape(control.id) + '"]');
  }

  function idOf(element) {
    if (!element.id) element.id = "a11y-" + ++seq;
    return element.id;
  }

  var FIXES = [
    // dcc.Dropdown: the trigger button takes the focus itself (a11y.css hides the aria-hidden
    // input Dash puts before it to forward the focus), and its <label> leads its name (Dash names
    // it by its value only: "Segments: All segments").
    [
      ".dash-dropdown-wrapper > button.dash-dropdown",
      function (button) {
        if (button.getAttribute("tabindex") === "-1") button.setAttribute("tabindex", "0");
        // What it opens is a dialog (Radix's popover) holding the options, not a listbox.
        if (button.getAttribute("aria-haspopup") !== "dialog") {
          button.setAttribute("aria-haspopup", "dialog");
        }
        var label = labelOf(button);
        if (!label) return;
        var ids = (button.getAttribute("aria-labelledby") || "").split(" ").filter(Boolean);
        if (ids.indexOf(idOf(label)) < 0) {
          button.setAttribute("aria-labelledby", [label.id].concat(ids).join(" "));
        }
      },
    ],
    // Its open list: Dash marks it up as a listbox of options, each holding a checkbox (or
    // radio) that is what takes the focus, the arrow keys and Enter. Read as what it is: a named
    // group of checkboxes, each named by its option's text and telling its own checked state.
    [
      ".dash-dropdown-content .dash-dropdown-options[role=listbox]",
      function (list) {
        var content = list.closest(".dash-dropdown-content");
        var trigger =
          content && content.id
            ? document.querySelector('[aria-controls="' + CSS.escape(content.id) + '"]')
            : null;
        var label = labelOf(trigger);
        list.setAttribute("role", "group");
        list.setAttribute("aria-label", label ? label.textContent.trim() : "Options");
      },
    ],
    [
      ".dash-dropdown-options [role=option], .dash-dropdown-options [aria-selected]",
      function (option) {
        option.removeAttribute("role");
        option.removeAttribute("aria-selected");
      },
    ],
    // dcc.DatePickerRange / DatePickerSingle: the box around the date inputs (it opens the
    // calendar and carries aria-expanded, which a plain <div> may not) is a group.
    [
      ".dash-datepicker-input-wrapper:not([role])",
      function (box) {
        box.setAttribute("role", "group");
      },
    ],
    // The calendar's year field.
    [
      ".dash-datepicker-controls input[type=number]:not([aria-label])",
      function (year) {
        year.setAttribute("aria-label", "Year");
      },
    ],
    // DataTable's page buttons are drawn as icons without a name.
    [
      ".previous-next-container button:not([aria-label])",
      function (button) {
        var names = {
          "first-page": "First page",
          "previous-page": "Previous page",
          "next-page": "Next page",
          "last-page": "Last page",
        };
        for (var name in names) {
          if (button.classList.contains(name)) button.setAttribute("aria-label", names[name]);
        }
      },
    ],
    [
      ".previous-next-container input.current-page:not([aria-label])",
      function (page) {
        page.setAttribute("aria-label", "Page number");
      },
    ],
  ];

  function fix() {
    FIXES.forEach(function (entry) {
      document.querySelectorAll(entry[0]).forEach(entry[1]);
    });
  }

  var queued = false;
  function later() {
    if (queued) return;
    queued = true;
    Promise.resolve().then(function () {
      queued = false;
      fix();
    });
  }

  new MutationObserver(later).observe(document.documentElement, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: [
      "tabindex",
      "aria-labelledby",
      "aria-haspopup",
      "role",
      "aria-label",
      "aria-selected",
    ],
  });
  fix();

  // The skip link moves the focus into the page itself (the hash alone would leave it on the
  // link in some browsers, and Dash's router listens to the address). <main> is focusable only
  // until the focus leaves it, so clicks in the page do not land on it.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.skip-link");
    var main = document.getElementById("main");
    if (!link || !main) return;
    event.preventDefault();
    main.setAttribute("tabindex", "-1");
    main.addEventListener(
      "blur",
      function () {
        main.removeAttribute("tabindex");
      },
      { once: true }
    );
    main.focus();
    main.scrollIntoView();
  });
})();
