using Lowbit.Models.Tokenization;
using Microsoft.ML.Tokenizers;

namespace Lowbit.Tests.Models.Tokenization;

public class SentencePieceBpeEncoderTests
{
    [Fact]
    public void AgreesWithMicrosoftMLTokenizers_ExceptOnScoreTies()
    {
        using var stream = File.OpenRead(TokenizerFixtures.Llama2Model);
        var reference = LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false);
        foreach (string text in TokenizerFixtures.TinyStoriesLines(400))
            Assert.Equal(reference.EncodeToIds(text), TokenizerFixtures.Llama2.Encode(text, addBos: false));

        // Equal scores: sentencepiece (and run.c) merge the leftmost pair first; Microsoft.ML.Tokenizers 2.0.1 the
        // rightmost. If this assertion starts failing, the library was fixed and may encode again.
        string a40 = new('a', 40);
        Assert.Equal([263, .. Enumerable.Repeat(27137, 9), 7340, 29874], TokenizerFixtures.Llama2.Encode(a40, addBos: false));
        Assert.Equal([29099, 7340, .. Enumerable.Repeat(27137, 9)], reference.EncodeToIds(a40));
    }

    [Fact]
    public void Tok512_RepeatedCharacters_MatchRunC()
    {
        var runC = new RunCEncoder(TokenizerFixtures.Tok512Bin, 512);
        foreach (string text in (string[])["aaaaaaaaaaaaa", "!!!!!!!!", "--------------", "        indented", "......", "zzzzzzzzzzzz"])
            Assert.Equal(runC.Encode(text), TokenizerFixtures.Tok512.Encode(text, addBos: true));
    }

    [Fact]
    public void ControlPieceText_IsEncodedAsPlainText()
    {
        // sentencepiece never produces control pieces from text: "<s>" is "<", "s", ">".
        Assert.DoesNotContain(1, TokenizerFixtures.Llama2.Encode("<s> literal </s>", addBos: false));
    }

    [Fact]
    public void UserDefinedPieces_StayWhole_AndWhitespaceCleanupWorks()
    {
        SentencePiece[] pieces =
        [
            new("<unk>", 0, SentencePieceType.Unknown), new("<s>", 0, SentencePieceType.Control), new("</s>", 0, SentencePieceType.Control),
            new("<tool>", 0, SentencePieceType.UserDefined), new("\u2581", -1, SentencePieceType.Normal), new("a", -2, SentencePieceType.Normal),
            new("b", -3, SentencePieceType.Normal), new("ab", -4, SentencePieceType.Normal), new("\u2581ab", -5, SentencePieceType.Normal),
            new("<", -6, SentencePieceType.Normal),
        ];
        var model = new SentencePieceModel { Pieces = pieces, ModelType = SentencePieceModel.ModelTypeBpe, RemoveExtraWhitespaces = true };
        var encoder = new SentencePieceBpeEncoder(model, "test.model");
        var ids = new List<int>();
        encoder.Encode("  ab<tool>ab   x ", ids);
        // " ab<tool>ab x": "▁ab", "<tool>" kept whole, "ab", "▁", then "x" is unknown (no byte fallback) → <unk>.
        Assert.Equal([8, 3, 7, 4, 0], ids);
    }
}
