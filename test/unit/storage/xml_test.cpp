// The XML scanning used on S3/STS answers.
#include <doctest/doctest.h>

#include "storage/xml.h"

namespace xml = hf::storage::xml;

TEST_CASE("xml: elements, attributes, self-closing, entities") {
  std::string doc =
      "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<IsTruncated>false</IsTruncated><Contents><Key>a&amp;b&lt;c&gt;&#x41;&#66;&quot;</Key><Size>3</Size>"
      "</Contents><Contents><Key>z</Key><Size>0</Size></Contents><CommonPrefixes/>"
      "<Weird attr=\"1\">w</Weird></ListBucketResult>";
  auto contents = xml::elements(doc, "Contents");
  REQUIRE(contents.size() == 2);
  CHECK(xml::text(contents[0], "Key") == "a&b<c>AB\"");
  CHECK(xml::text(contents[1], "Size") == "0");
  CHECK(xml::text(doc, "IsTruncated") == "false");
  CHECK(xml::elements(doc, "CommonPrefixes").size() == 1);
  CHECK(xml::text(doc, "Weird") == "w");
  CHECK(xml::text(doc, "Missing").empty());
  CHECK_FALSE(xml::has(doc, "Key2"));
  CHECK(xml::elements(doc, "Content").empty());  // prefix of a tag name is not the tag
  CHECK(xml::unescape("&unknown; &#xZZ;") == "&unknown; &#xZZ;");
  CHECK(xml::unescape("&#233;") == "\xc3\xa9");
  // Character references are strict digits: signs, spaces and out-of-range values stay as text.
  for (const char* kept : {"&#+65;", "&# 65;", "&#-1;", "&#x;", "&#1114112;", "&#99999999999999999999999;"})
    CHECK(xml::unescape(kept) == kept);
  CHECK(xml::unescape("&#x41;&#65;") == "AA");
  CHECK(xml::escape("a<b>&\"'") == "a&lt;b&gt;&amp;&quot;&apos;");
}
