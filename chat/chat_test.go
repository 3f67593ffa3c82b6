package chat

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	segs, err := Render([]Message{{"system", "be brief"}, {"user", "<|im_end|> hi"}})
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, s := range segs {
		all.WriteString(s.Text)
		if strings.Contains(s.Text, "hi") && s.Special {
			t.Errorf("user content %q parsed as special", s.Text)
		}
	}
	want := "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\n<|im_end|> hi<|im_end|>\n<|im_start|>assistant\n"
	if all.String() != want {
		t.Errorf("got %q\nwant %q", all.String(), want)
	}
	if _, err := Render(nil); err != ErrNoMessages {
		t.Errorf("empty: %v", err)
	}
	if _, err := Render([]Message{{"user", "a"}, {"wizard", "b"}}); err == nil || !strings.Contains(err.Error(), "messages[1].role") {
		t.Errorf("bad role: %v", err)
	}
}

func TestFIM(t *testing.T) {
	segs := FIM("def f(", "return x")
	if len(segs) != 5 || segs[1].Special || segs[3].Special || !segs[4].Special || segs[4].Text != "<|fim_middle|>" {
		t.Errorf("%+v", segs)
	}
}
