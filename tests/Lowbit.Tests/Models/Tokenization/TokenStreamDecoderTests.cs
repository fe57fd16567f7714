using System.Text;
using System.Text.Json;
using Lowbit.Models.Tokenization;

namespace Lowbit.Tests.Models.Tokenization;

public class TokenStreamDecoderTests
{
    public static TheoryData<int> Stories260KCases => [0, 1];

    [Theory]
    [MemberData(nameof(Stories260KCases))]
    public void Stories260K_RunCText_FromDecodeAndFromStream(int index)
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(TokenizerFixtures.Stories260KGreedy));
        JsonElement c = doc.RootElement.GetProperty("cases")[index];
        int[] prompt = [.. c.GetProperty("prompt_token_ids").EnumerateArray().Select(e => e.GetInt32())];
        int[] generated = [.. c.GetProperty("generated_token_ids").EnumerateArray().Select(e => e.GetInt32())];
        string text = c.GetProperty("text").GetString()!;
        int[] all = [.. prompt, .. generated];

        // run.c prints every piece after BOS: the prompt's and the generated ones.
        Assert.Equal(text, TokenizerFixtures.Tok512.Decode(all));
        Assert.Equal(text, Stream(TokenizerFixtures.Tok512, all));
        Assert.Equal(prompt, TokenizerFixtures.Tok512.Encode(c.GetProperty("prompt").GetString()!, addBos: true));
    }

    [Fact]
    public void Stream_EqualsDecode_OnFixtureText()
    {
        foreach (TextTokenizer tokenizer in (TextTokenizer[])[TokenizerFixtures.Llama2, TokenizerFixtures.Tok512, TinyByteLevelBpe.Load(withBos: true)])
        {
            foreach (string line in TokenizerFixtures.HardCases.Concat(TokenizerFixtures.TinyStoriesLines(200)))
            {
                int[] ids = tokenizer.Encode(line, addBos: tokenizer.AddBosToken);
                Assert.Equal(tokenizer.Decode(ids), Stream(tokenizer, ids));
            }
        }
    }

    [Fact]
    public void ByteFallback_CharacterAppearsWithItsLastByte()
    {
        // tok512 has no piece for "🦙" (F0 9F A6 99): four byte pieces, text only at the fourth.
        TextTokenizer tokenizer = TokenizerFixtures.Tok512;
        int[] ids = tokenizer.Encode("🦙", addBos: false);
        Assert.Equal([410, 0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3], ids);
        var decoder = new TokenStreamDecoder(tokenizer);
        Assert.Equal(["", "", "", "", "🦙"], ids.Select(decoder.Push));
    }

    [Fact]
    public void ByteLevel_CharacterSplitOverTokensAppearsWhole()
    {
        // The tiny BPE has no merge for "é" (C3 A9): two tokens, the first completes nothing.
        TextTokenizer tokenizer = TinyByteLevelBpe.Load(withBos: false);
        int[] ids = tokenizer.Encode("aé", addBos: false);
        Assert.Equal(['a', 0xC3, 0xA9], ids);
        var decoder = new TokenStreamDecoder(tokenizer);
        Assert.Equal(["a", "", "é"], ids.Select(decoder.Push));
    }

    [Fact]
    public void DummyPrefix_DroppedOnlyAtTheStart_PushPromptToContinue()
    {
        TextTokenizer tokenizer = TokenizerFixtures.Llama2;
        int[] prompt = tokenizer.Encode("Once upon", addBos: true);
        int[] next = tokenizer.Encode(" a time", addBos: false)[1..]; // drop the "▁" dummy piece
        var fresh = new TokenStreamDecoder(tokenizer);
        Assert.Equal("a time", string.Concat(next.Select(fresh.Push)));

        var continued = new TokenStreamDecoder(tokenizer);
        Assert.Equal("Once upon", string.Concat(prompt.Select(continued.Push)));
        Assert.Equal(" a time", string.Concat(next.Select(continued.Push)));
    }

    [Fact]
    public void Flush_ReportsAnUnfinishedCharacterAndResets()
    {
        TextTokenizer tokenizer = TokenizerFixtures.Tok512;
        var decoder = new TokenStreamDecoder(tokenizer);
        Assert.Equal("", decoder.Push(0xF0 + 3));
        Assert.Equal("\uFFFD", decoder.Flush());
        Assert.Equal("\uFFFD", tokenizer.Decode([0xF0 + 3]));
        Assert.Equal("Once", decoder.Push(403));
    }

    private static string Stream(TextTokenizer tokenizer, int[] ids)
    {
        var decoder = new TokenStreamDecoder(tokenizer);
        var text = new StringBuilder();
        foreach (int id in ids)
        {
            string piece = decoder.Push(id);
            Assert.DoesNotContain('\uFFFD', piece);
            text.Append(piece);
        }
        return text.ToString();
    }
}
