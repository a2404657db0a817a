// GET /: one self-contained HTML page (inline CSS and script, no external assets: works offline)
// where a person pastes text and sees every label's score as a bar.
#pragma once

#include <string_view>

namespace hf::serve {

std::string_view index_page();

}  // namespace hf::serve
